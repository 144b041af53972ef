"""Artifacts on disk: the export folder and the engine file, their names, manifests and staleness checks.

This is the one place that knows how an export folder (``unet.onnx`` [+ ``unet.onnx.data``], ``io_spec.json``,
``manifest.json``) and an engine (``<stem>.engine`` + ``<stem>.manifest.json``) are laid out. The exporter and
the builder write through it; runners, sampling and parity receive the loaded objects (Polygraphy's loader
idea) and never parse folders themselves.
"""

from .engine import (
    ENGINE_FORMAT,
    EngineArtifact,
    EngineManifest,
    check_engine,
    engine_manifest_path,
    open_engine,
)
from .export import (
    DATA_NAME,
    EXPORT_FORMAT,
    IO_SPEC_NAME,
    MANIFEST_NAME,
    ONNX_NAME,
    ExportArtifact,
    is_export_folder,
    now_utc,
    open_export,
    package_versions,
    read_manifest,
    resolve_onnx,
)

__all__ = [
    "DATA_NAME",
    "ENGINE_FORMAT",
    "EXPORT_FORMAT",
    "IO_SPEC_NAME",
    "MANIFEST_NAME",
    "ONNX_NAME",
    "EngineArtifact",
    "EngineManifest",
    "ExportArtifact",
    "check_engine",
    "engine_manifest_path",
    "is_export_folder",
    "now_utc",
    "open_engine",
    "open_export",
    "package_versions",
    "read_manifest",
    "resolve_onnx",
]
