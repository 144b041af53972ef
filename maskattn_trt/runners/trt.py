"""TensorRT / TensorRT-RTX engine runner (the same Runner contract as eager and ONNX Runtime).

Deserializes the engine after checking its manifest, preallocates one device buffer per IO tensor for the
largest shape of its profile (torch CUDA tensors), binds them with ``set_tensor_address`` and runs
``execute_async_v3`` on a torch CUDA stream. Static-shape engines can replay a captured CUDA graph. For
TensorRT-RTX the execution context gets a runtime config with a runtime cache (its JIT-compiled kernels),
loaded from and saved to ``runtime_cache`` when given.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..artifacts import EngineArtifact, check_engine, open_engine
from ..errors import BackendUnavailableError, EngineBuildError
from ..spec import TRT_TORCH_DTYPES
from ..utils.io import atomic_path
from ..utils.tensorrt import device_compute_capability, load_flavour
from .base import Runner


def require_gpu(what: str) -> None:
    """Refuse in one line, before any work, to run a TensorRT engine where there is no CUDA GPU."""
    if not torch.cuda.is_available():
        raise BackendUnavailableError(
            f"{what} needs a CUDA GPU and none is available here; TensorRT engines deserialize only on a GPU "
            "(use --backend eager or onnxruntime on this machine)"
        )


class TrtRunner(Runner):
    """Runs a built engine (an :class:`~maskattn_trt.artifacts.EngineArtifact` or its path); refuses one whose manifest does not match the ONNX / gates / GPU (``force`` overrides)."""

    name = "tensorrt"

    def __init__(self, engine: EngineArtifact | str | Path, *, onnx_sha256: str | None = None,
                 gates_hash: str | None = None, force: bool = False, cuda_graph: bool = False,
                 runtime_cache: str | Path | None = None):
        self.artifact = engine if isinstance(engine, EngineArtifact) else open_engine(engine)
        self.engine_path = self.artifact.engine_path
        self.manifest = self.artifact.manifest
        super().__init__(self.artifact.io_spec)
        self.name = self.manifest.builder
        self._checks = {"onnx_sha256": onnx_sha256, "gates_hash": gates_hash, "force": force}
        self.cuda_graph = cuda_graph
        self.runtime_cache_path = Path(runtime_cache) if runtime_cache else None
        self.mismatches: list[str] = []
        self._graph = None

    @property
    def device(self) -> torch.device:
        return torch.device("cuda")

    def activate(self) -> None:
        require_gpu(f"running engine {self.engine_path}")
        self.mismatches = check_engine(self.engine_path, self.manifest, device_cc=device_compute_capability(),
                                       **self._checks)
        self.flavour = load_flavour(self.manifest.builder)
        trt = self.flavour.trt
        self._logger = self.flavour.logger()
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            raise EngineBuildError(f"{self.flavour.label} could not deserialize {self.engine_path} on this GPU; "
                                   "rebuild it here (`maskattn-trt build-engine`)")
        self.context = self._create_context(trt)
        self.stream = torch.cuda.Stream()
        self.buffers = {}
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        spec = self.spec
        largest = spec.shapes(*spec.max_dims())
        for name in names:
            dtype = TRT_TORCH_DTYPES[self.engine.get_tensor_dtype(name).name]
            self.buffers[name] = torch.empty(largest[name], dtype=dtype, device="cuda")
            self.context.set_tensor_address(name, self.buffers[name].data_ptr())

    def _create_context(self, trt):
        if not self.flavour.is_rtx:
            return self.engine.create_execution_context()
        config = self.engine.create_runtime_config()
        cache = config.create_runtime_cache()
        if self.runtime_cache_path is not None and self.runtime_cache_path.is_file():
            cache.deserialize(self.runtime_cache_path.read_bytes())
        config.set_runtime_cache(cache)
        self._runtime_config, self._runtime_cache = config, cache
        return self.engine.create_execution_context(config)

    def deactivate(self) -> None:
        if getattr(self, "_runtime_cache", None) is not None and self.runtime_cache_path is not None:
            with atomic_path(self.runtime_cache_path) as tmp:
                tmp.write_bytes(bytes(self._runtime_cache.serialize()))
        for attr in ("_graph", "context", "engine", "_runtime_cache", "_runtime_config", "buffers"):
            if hasattr(self, attr):
                setattr(self, attr, None)

    def _views(self, shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
        return {name: self.buffers[name].view(-1)[: _numel(shape)].view(shape) for name, shape in shapes.items()}

    def infer_impl(self, feed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        shapes = self.spec.shapes(*self.spec.feed_shape(feed))
        views = self._views(shapes)
        caller = torch.cuda.current_stream()
        self.stream.wait_stream(caller)  # inputs produced on the caller's stream must be ready
        with torch.cuda.stream(self.stream):
            for name in self.spec.input_names:
                views[name].copy_(feed[name].to(views[name].dtype), non_blocking=True)
                if not self.context.set_input_shape(name, tuple(shapes[name])):
                    raise EngineBuildError(f"engine {self.engine_path} rejected input {name} of shape {shapes[name]}")
            for name in self.outputs:
                self.context.set_tensor_address(name, views[name].data_ptr())
            for name in self.spec.input_names:
                self.context.set_tensor_address(name, views[name].data_ptr())
            if self.cuda_graph and self.spec.batch.min == self.spec.batch.max and self._static():
                self._replay()
            elif not self.context.execute_async_v3(self.stream.cuda_stream):
                raise EngineBuildError(f"{self.flavour.label} failed to execute {self.engine_path}")
            outputs = {name: views[name].clone() for name in self.spec.output_names}
        # No host synchronisation: the caller's stream waits for ours, so a sampler can queue the next step.
        caller.wait_stream(self.stream)
        for tensor in outputs.values():
            tensor.record_stream(caller)
        return outputs

    def _static(self) -> bool:
        return all(getattr(self.spec, k).min == getattr(self.spec, k).max for k in ("height", "width")
                   if hasattr(self.spec, k))

    def _replay(self) -> None:
        """Capture the engine's launch into a CUDA graph once (shapes and addresses are fixed), then replay it."""
        if self._graph is None:
            if not self.context.execute_async_v3(self.stream.cuda_stream):  # warm-up outside capture
                raise EngineBuildError(f"{self.flavour.label} failed to execute {self.engine_path}")
            self._graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self._graph, stream=self.stream):
                self.context.execute_async_v3(self.stream.cuda_stream)
        self._graph.replay()


def _numel(shape) -> int:
    count = 1
    for dim in shape:
        count *= int(dim)
    return count
