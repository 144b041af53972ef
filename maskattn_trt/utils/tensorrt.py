"""The two TensorRT flavours behind one builder: standard ``tensorrt`` and TensorRT-RTX.

Both expose the same Python API for what we need (Builder, OnnxParser, IBuilderConfig, Runtime, Refitter);
they differ in the module name, in compute-capability targets (RTX builds ahead of time for chosen GPUs, on a
machine without one) and in the timing cache (a no-op in TensorRT-RTX since 1.2). Imports happen here,
lazily, so nothing else in the package imports TensorRT at module level.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType

from ..errors import BackendUnavailableError, BadInputError

TENSORRT = "tensorrt"
TENSORRT_RTX = "tensorrt-rtx"
BUILDERS = (TENSORRT, TENSORRT_RTX)

# TensorRT-RTX compute-capability targets (ComputeCapability enum members).
COMPUTE_CAPABILITIES = ("SM75", "SM80", "SM86", "SM89", "SM120")

_MODULES = {TENSORRT: "tensorrt", TENSORRT_RTX: "tensorrt_rtx_bindings"}
_INSTALL_HINTS = {
    TENSORRT: "install it on a GPU machine with `pip install -e '.[gpu]'` (NVIDIA's tensorrt wheels), "
              "or build with --builder tensorrt-rtx",
    TENSORRT_RTX: "install it with `pip install -e '.[rtx]'` (tensorrt-rtx-cu12-libs + tensorrt-rtx-cu12-bindings)",
}


@dataclass(frozen=True)
class Flavour:
    """One importable TensorRT flavour."""

    name: str
    trt: ModuleType

    @property
    def version(self) -> str:
        return str(getattr(self.trt, "__version__", "unknown"))

    @property
    def is_rtx(self) -> bool:
        return self.name == TENSORRT_RTX

    @property
    def label(self) -> str:
        return f"{'TensorRT-RTX' if self.is_rtx else 'TensorRT'} {self.version}"

    def logger(self, verbose: bool = False):
        trt = self.trt
        return trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)

    def compute_capability(self, name: str):
        """The ComputeCapability enum member for ``SM89``-style names (TensorRT-RTX only)."""
        return getattr(self.trt.ComputeCapability, name)


def is_installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(_MODULES[name]) is not None
    except (ImportError, ValueError):
        return False


def installed_builders() -> list[str]:
    return [name for name in BUILDERS if is_installed(name)]


def default_builder() -> str:
    """Whichever flavour is installed, preferring standard TensorRT."""
    found = installed_builders()
    if not found:
        raise BackendUnavailableError(
            "no TensorRT builder is installed (neither tensorrt nor tensorrt_rtx_bindings); "
            f"{_INSTALL_HINTS[TENSORRT_RTX]}, or {_INSTALL_HINTS[TENSORRT].split(', or ')[0]}"
        )
    return found[0]


def load_flavour(name: str | None = None) -> Flavour:
    """Import a flavour by name (``tensorrt`` / ``tensorrt-rtx``; None = default), with an install hint if absent."""
    name = name or default_builder()
    if name not in BUILDERS:
        raise BadInputError(f"builder must be one of {', '.join(BUILDERS)}; got {name!r}")
    module = _MODULES[name]
    try:
        trt = importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the {name} builder needs the Python package {module!r}, which is not importable here ({exc}); "
            f"{_INSTALL_HINTS[name]}"
        ) from exc
    return Flavour(name=name, trt=trt)


def parse_compute_capability(text: str) -> str:
    """``SM89`` / ``sm89`` / ``8.9`` / ``89`` -> ``SM89``, refusing targets TensorRT-RTX does not build for."""
    raw = str(text).strip().upper().replace("SM_", "SM")
    if not raw.startswith("SM"):
        raw = "SM" + raw.replace(".", "")
    if raw not in COMPUTE_CAPABILITIES:
        raise BadInputError(
            f"unknown compute capability {text!r}; TensorRT-RTX builds for {', '.join(COMPUTE_CAPABILITIES)} "
            "(e.g. SM89 for RTX 40xx, SM86 for RTX 30xx, SM120 for RTX 50xx)"
        )
    return raw


def device_compute_capability() -> str | None:
    """``SM89``-style name of the current CUDA device, or None without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability()
    return f"SM{major}{minor}"
