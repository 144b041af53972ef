"""TensorRT engines from export folders: the builder (both TensorRT flavours), refit and layer inspection.

Kept import-free so that importing a submodule does not import the others; TensorRT itself is imported only
when a build starts (:mod:`maskattn_trt.utils.tensorrt`).
"""
