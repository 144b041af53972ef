"""Export the (gated) UNet as one ONNX graph: exporter, reversible export-time patches, validation, manifest."""

from .manifest import read_manifest, resolve_onnx
from .onnx import EXPORTERS, ExportResult, cast_unet, export_unet
from .validate import GraphReport, check_onnx_file, graph_report

__all__ = [
    "EXPORTERS",
    "ExportResult",
    "GraphReport",
    "cast_unet",
    "check_onnx_file",
    "export_unet",
    "graph_report",
    "read_manifest",
    "resolve_onnx",
]
