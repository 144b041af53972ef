"""Artifacts on disk: the export folder and the engine file, their names, manifests and staleness checks.

This is the one place that knows how an export folder (``<component>.onnx`` [+ ``.onnx.data``], ``io_spec.json``,
``manifest.json``), an export tree (one folder per component) and an engine (``<stem>.engine`` + ``<stem>.manifest.json``) are laid out. The exporter and
the builder write through it; runners, sampling and parity receive the loaded objects (Polygraphy's loader
idea) and never parse folders themselves.
"""

from .engine import (
    ENGINE_FORMAT,
    EngineArtifact,
    EngineManifest,
    check_engine,
    engine_manifest_path,
    engine_name,
    open_engine,
    open_engine_tree,
)
from .export import (
    DATA_NAME,
    EXPORT_FORMAT,
    IO_SPEC_NAME,
    MANIFEST_NAME,
    ONNX_NAME,
    ExportArtifact,
    data_name,
    folder_components,
    is_export_folder,
    now_utc,
    onnx_name,
    open_export,
    open_export_tree,
    package_versions,
    read_manifest,
    resolve_onnx,
    tree_components,
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
    "engine_name",
    "data_name",
    "folder_components",
    "now_utc",
    "onnx_name",
    "open_engine",
    "open_engine_tree",
    "open_export",
    "open_export_tree",
    "package_versions",
    "read_manifest",
    "resolve_onnx",
    "tree_components",
]
