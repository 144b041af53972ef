"""ONNX Runtime runner over any exported component (an :class:`~maskattn_trt.artifacts.ExportArtifact`: UNet, text
encoder or VAE decoder; the same Runner contract as eager and TensorRT). Names, dtypes and shapes come from the
artifact's IO spec.

Execution providers: by default CUDA then CPU, whichever the installed onnxruntime has (a CPU-only
onnxruntime runs on CPU). The TensorRT EP builds an engine when the session starts (minutes for SDXL), so it is
opt-in (``providers=["tensorrt", "cuda", "cpu"]`` / ``--providers tensorrt,cuda,cpu``); it gets the export's min/opt/max profile and
caches its engines beside the graph. Outputs are written into preallocated NaN-filled buffers through IO
binding, so an element the graph failed to write would show up as NaN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..artifacts import ExportArtifact, open_export
from ..component_spec import IOSpec
from ..errors import BackendUnavailableError, BadInputError, MaskAttnError
from .base import Runner

PROVIDERS = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}


def _import_ort():
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailableError(f"onnxruntime is not installed ({exc}); pip install onnxruntime "
                                      "(or onnxruntime-gpu for CUDA / TensorRT execution providers)") from exc
    return onnxruntime


def resolve_providers(requested, available: list[str]) -> list[str]:
    """``None`` -> the available of CUDA, CPU; else names ('cpu', 'cuda', 'tensorrt' or full EP names)."""
    if requested is None:
        defaults = (PROVIDERS["cuda"], PROVIDERS["cpu"])
        return [p for p in defaults if p in available] or ["CPUExecutionProvider"]
    names = [requested] if isinstance(requested, str) else list(requested)
    chosen = []
    for name in names:
        full = PROVIDERS.get(str(name).lower(), name)
        if full not in available:
            raise BackendUnavailableError(
                f"ONNX Runtime execution provider {name!r} is not available here (available: {', '.join(available)});"
                " install onnxruntime-gpu for CUDA / TensorRT, or use --providers cpu"
            )
        chosen.append(full)
    return chosen


def _shape_text(spec: IOSpec, which: int) -> str:
    return ",".join(f"{name}:{'x'.join(map(str, shapes[which]))}" for name, shapes in spec.profile().items())


class OrtRunner(Runner):
    """Runs an export's graph (``unet.onnx``, ``text_encoder.onnx``, ...) with ONNX Runtime.

    ``export``: an :class:`~maskattn_trt.artifacts.ExportArtifact` (from :func:`~maskattn_trt.artifacts.open_export`);
    an export folder or ``.onnx`` path is opened through the same loader, as a convenience.
    """

    name = "onnxruntime"

    def __init__(self, export: ExportArtifact | str | Path, providers=None, *, threads: int | None = None,
                 spec: IOSpec | None = None, spinning: bool = True):
        self.artifact = export if isinstance(export, ExportArtifact) else open_export(export)
        self.onnx_path = self.artifact.onnx_path
        super().__init__(spec or self.artifact.io_spec)
        self.requested_providers = providers
        self.threads = threads
        self.spinning = spinning  # False: idle threads sleep (fair when other work shares the CPU)
        self.session = None
        self.providers: list[str] = []

    def _provider_options(self, providers: list[str]) -> list[dict]:
        options = []
        for provider in providers:
            if provider == PROVIDERS["tensorrt"]:
                options.append({
                    "trt_fp16_enable": self.spec.dtype == "fp16",
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(self.onnx_path.parent / "ort_trt_cache"),
                    "trt_profile_min_shapes": _shape_text(self.spec, 0),
                    "trt_profile_opt_shapes": _shape_text(self.spec, 1),
                    "trt_profile_max_shapes": _shape_text(self.spec, 2),
                })
            else:
                options.append({})
        return options

    def activate(self) -> None:
        ort = _import_ort()
        providers = resolve_providers(self.requested_providers, ort.get_available_providers())
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if self.threads:
            options.intra_op_num_threads = int(self.threads)
        if not self.spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.onnx_path), options, providers=providers,
                                                provider_options=self._provider_options(providers))
        except Exception as exc:  # onnxruntime raises its own pybind exception types (Fail, InvalidGraph, ...)
            raise MaskAttnError(f"ONNX Runtime could not load {self.onnx_path}: {str(exc).splitlines()[0]}; "
                                "re-export it with `maskattn-trt export`") from exc
        self.providers = self.session.get_providers()
        graph_inputs = [i.name for i in self.session.get_inputs()]
        expected = list(self.spec.input_names)
        if graph_inputs != expected:
            raise BadInputError(f"{self.onnx_path} has inputs {graph_inputs}, expected {expected}: not a "
                                f"maskattn-trt {self.spec.component} export")

    def deactivate(self) -> None:
        self.session = None

    def infer_impl(self, feed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        shapes = self.spec.shapes(*self.spec.feed_shape(feed))
        dtypes = self.spec.input_dtypes()
        binding = self.session.io_binding()
        arrays = {}
        for name in self.spec.input_names:
            tensor = feed[name]
            if tuple(tensor.shape) != shapes[name]:
                raise BadInputError(f"{self.name} input {name} has shape {tuple(tensor.shape)}, expected "
                                    f"{shapes[name]} for this sample shape")
            arrays[name] = np.ascontiguousarray(tensor.detach().to("cpu", dtypes[name]).numpy())
            binding.bind_cpu_input(name, arrays[name])
        out_dtypes = self.spec.output_dtypes()
        outputs = {}
        for name in self.spec.output_names:
            out_dtype = torch.empty((), dtype=out_dtypes[name]).numpy().dtype
            outputs[name] = np.full(shapes[name], np.nan, dtype=out_dtype)  # poisoned: unwritten -> NaN
            binding.bind_output(name, "cpu", 0, out_dtype, outputs[name].shape, outputs[name].ctypes.data)
        try:
            self.session.run_with_iobinding(binding)
        except Exception as exc:  # onnxruntime's pybind exception types
            first = self.spec.input_names[0]
            raise MaskAttnError(f"ONNX Runtime failed on {self.onnx_path} with {first} {shapes[first]}: "
                                f"{str(exc).splitlines()[0]}") from exc
        return {name: torch.from_numpy(array) for name, array in outputs.items()}
