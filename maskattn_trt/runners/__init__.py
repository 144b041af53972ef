"""One runner contract for every backend (eager PyTorch, ONNX Runtime, TensorRT).

Runners receive loaded artifacts (:mod:`maskattn_trt.artifacts`); onnxruntime and TensorRT themselves are
imported only when a runner is activated, so importing this package stays cheap.
"""

from .base import Runner
from .eager import EagerRunner
from .ort import OrtRunner
from .trt import TrtRunner, require_gpu

__all__ = ["EagerRunner", "OrtRunner", "Runner", "TrtRunner", "require_gpu"]
