"""One runner contract for every backend (eager PyTorch, ONNX Runtime, TensorRT)."""

from .base import Runner
from .eager import EagerRunner

__all__ = ["EagerRunner", "Runner"]
