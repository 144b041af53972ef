"""One runner contract for every backend (eager PyTorch, ONNX Runtime, TensorRT)."""

from .base import Runner
from .eager import EagerRunner

__all__ = ["EagerRunner", "Runner"]


def __getattr__(name):  # lazy: TrtRunner imports TensorRT only when activated, but keep torch-only imports cheap
    if name == "TrtRunner":
        from .trt import TrtRunner

        return TrtRunner
    if name == "OrtRunner":  # imports onnxruntime only when activated
        from .ort import OrtRunner

        return OrtRunner
    raise AttributeError(name)
