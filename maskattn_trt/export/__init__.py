"""Export the (gated) UNet as one ONNX graph: exporter, reversible export-time patches, validation.

The folder layout and manifest belong to :mod:`maskattn_trt.artifacts`; ``cast_unet`` to
:mod:`maskattn_trt.gates` (re-exported here, where export users look for it).
"""

from ..artifacts import read_manifest, resolve_onnx
from ..gates import cast_unet
from .from_model import ExportRequest, export_model
from .onnx import EXPORTERS, ExportResult, export_unet
from .validate import GraphReport, check_onnx_file, graph_report

__all__ = [
    "EXPORTERS",
    "ExportRequest",
    "ExportResult",
    "GraphReport",
    "cast_unet",
    "check_onnx_file",
    "export_model",
    "export_unet",
    "graph_report",
    "read_manifest",
    "resolve_onnx",
]
