"""The export folder: ``<component>.onnx`` (+ ``<component>.onnx.data`` over 2 GB), ``io_spec.json`` and
``manifest.json``; and the export tree (``export --component all``): one such folder per component.

A folder holds exactly one component (``unet``, ``text_encoder``, ``text_encoder_2``, ``vae_decoder``), named by
its graph file and recorded in its IO spec and manifest, so a folder passed where another component is expected
is refused with a clear message.

The manifest records what was exported, from what, with what: the engine builder reads ``onnx_sha256`` and
``gates_hash``; ``parity`` reads ``model``, ``seed`` and the gate checkpoint to rebuild the eager reference;
``generate`` reads the UNet fingerprint to refuse an export of another model.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from ..component_spec import COMPONENTS, IOSpec, check_component, component_of, load_io_spec
from ..errors import BadInputError
from ..utils.io import sha256_file

EXPORT_FORMAT = "maskattn-trt-export-v1"


def onnx_name(component: str = "unet") -> str:
    return f"{check_component(component)}.onnx"


def data_name(component: str = "unet") -> str:
    return onnx_name(component) + ".data"


ONNX_NAME = onnx_name("unet")
DATA_NAME = data_name("unet")
IO_SPEC_NAME = "io_spec.json"
MANIFEST_NAME = "manifest.json"
_PACKAGES = ("torch", "onnx", "onnxruntime", "onnxslim", "diffusers", "transformers", "maskattn-trt")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def folder_components(folder: Path) -> list[str]:
    """The components whose graph file lies in ``folder`` (one for a folder written by ``export``)."""
    return [c for c in COMPONENTS if (folder / onnx_name(c)).is_file()]


def tree_components(folder: Path) -> list[str]:
    """The components of an export tree: subfolders named after a component, each holding its graph."""
    return [c for c in COMPONENTS if (folder / c / onnx_name(c)).is_file()]


def resolve_onnx(path: str | Path, component: str | None = None) -> Path:
    """An export folder or a ``.onnx`` file -> the ``.onnx`` file, with a clear error when absent or when the
    folder holds another component than ``component``."""
    path = Path(path)
    if path.is_dir():
        found = folder_components(path)
        if component is not None and component not in found and component in tree_components(path):
            path, found = path / component, [component]
        if not found:
            inside = tree_components(path)
            hint = (f" (it is an export tree holding {', '.join(inside)}: pass {path}/<component>)" if inside
                    else "")
            raise BadInputError(f"no ONNX graph in {path}{hint}; pass a folder written by `maskattn-trt export`")
        if component is not None and component not in found:
            raise BadInputError(f"{path} holds the {' and '.join(found)} export, not the {component}; pass the "
                                f"{component} folder (`maskattn-trt export --component {component}` writes one)")
        onnx_path = path / onnx_name(component or found[0])
    else:
        onnx_path = path
    if not onnx_path.is_file():
        raise BadInputError(f"no ONNX graph at {onnx_path}; pass a folder written by `maskattn-trt export` "
                            "or its .onnx file")
    return onnx_path


def read_manifest(folder: str | Path) -> dict:
    """The export manifest of ``folder`` (an export folder or its ``unet.onnx``)."""
    folder = Path(folder)
    if folder.is_file():
        folder = folder.parent
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise BadInputError(f"{folder} has no {MANIFEST_NAME}; point at a folder written by `maskattn-trt export`")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BadInputError(f"export manifest {path} is corrupted ({exc}); re-run `maskattn-trt export`") from exc
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise BadInputError(f"{path} has format {found!r}, expected {EXPORT_FORMAT!r}; re-run `maskattn-trt export`")
    return data


def is_export_folder(folder: str | Path) -> bool:
    """True when ``folder`` holds a manifest of ours (a previous export, which ``export`` may replace)."""
    try:
        read_manifest(folder)
    except (BadInputError, OSError, UnicodeDecodeError):
        return False
    return True


@dataclass(frozen=True)
class ExportArtifact:
    """A loaded export: its graph path, IO spec and manifest (empty for a bare ``.onnx`` + ``io_spec.json``)."""

    onnx_path: Path
    io_spec: IOSpec
    manifest: dict = field(default_factory=dict)

    @property
    def component(self) -> str:
        return component_of(self.io_spec)

    @property
    def folder(self) -> Path:
        return self.onnx_path.parent

    @property
    def gates_hash(self) -> str | None:
        return self.manifest.get("gates_hash")

    @property
    def gate_checkpoint(self) -> dict:
        return self.manifest.get("gate_checkpoint") or {}

    def onnx_sha256(self) -> str:
        """The graph file's sha256, checked against the manifest's record (a graph modified after export is
        refused)."""
        actual = sha256_file(self.onnx_path)
        recorded = self.manifest.get("onnx_sha256")
        if recorded is not None and recorded != actual:
            raise BadInputError(f"{self.onnx_path} does not match the sha256 in {self.folder / MANIFEST_NAME} "
                                "(modified after export?); re-run `maskattn-trt export`")
        return actual


def open_export(path: str | Path, *, require_manifest: bool = False, component: str | None = None) -> ExportArtifact:
    """An export folder or its ``.onnx`` -> :class:`ExportArtifact` (IO spec required; the manifest too when
    ``require_manifest``). With ``component``, a folder (or tree subfolder) of another component is refused."""
    onnx_path = resolve_onnx(path, component)
    io_spec = load_io_spec(onnx_path.parent / IO_SPEC_NAME)
    found = component_of(io_spec)
    if component is not None and found != component:
        raise BadInputError(f"{onnx_path.parent} holds the {found} export, not the {component}; pass the "
                            f"{component} folder")
    if onnx_path.name in {onnx_name(c) for c in COMPONENTS} and onnx_path.name != onnx_name(found):
        raise BadInputError(f"{onnx_path} sits beside an IO spec of the {found}: the folder mixes two exports; "
                            "re-export it")
    has_manifest = (onnx_path.parent / MANIFEST_NAME).is_file()
    manifest = read_manifest(onnx_path.parent) if has_manifest or require_manifest else {}
    if manifest and manifest.get("component", "unet") != found:
        raise BadInputError(f"{onnx_path.parent}: the manifest says {manifest.get('component', 'unet')}, the IO "
                            f"spec {found}; the folder mixes two exports — re-export it")
    return ExportArtifact(onnx_path, io_spec, manifest)


def open_export_tree(path: str | Path, *, require_manifest: bool = False) -> dict[str, ExportArtifact]:
    """An export tree (``export --component all``) or one component folder -> {component: artifact}."""
    path = Path(path)
    if path.is_dir() and not folder_components(path) and tree_components(path):
        return {c: open_export(path / c, require_manifest=require_manifest, component=c)
                for c in tree_components(path)}
    artifact = open_export(path, require_manifest=require_manifest)
    return {artifact.component: artifact}
