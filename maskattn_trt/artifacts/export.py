"""The export folder: ``unet.onnx`` (+ ``unet.onnx.data`` over 2 GB), ``io_spec.json`` and ``manifest.json``.

The manifest records what was exported, from what, with what: the engine builder reads ``onnx_sha256`` and
``gates_hash``; ``parity`` reads ``model``, ``seed`` and the gate checkpoint to rebuild the eager reference;
``generate`` reads the UNet fingerprint to refuse an export of another model.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from ..errors import BadInputError
from ..spec import UNetIOSpec
from ..utils.io import sha256_file

EXPORT_FORMAT = "maskattn-trt-export-v1"
ONNX_NAME = "unet.onnx"
DATA_NAME = "unet.onnx.data"
IO_SPEC_NAME = "io_spec.json"
MANIFEST_NAME = "manifest.json"
_PACKAGES = ("torch", "onnx", "onnxruntime", "onnxslim", "diffusers", "transformers", "maskattn-trt")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def resolve_onnx(path: str | Path) -> Path:
    """An export folder or a ``.onnx`` file -> the ``.onnx`` file, with a clear error when absent."""
    path = Path(path)
    onnx_path = path / ONNX_NAME if path.is_dir() else path
    if not onnx_path.is_file():
        raise BadInputError(f"no ONNX graph at {onnx_path}; pass a folder written by `maskattn-trt export` "
                            "or its unet.onnx")
    return onnx_path


def read_manifest(folder: str | Path) -> dict:
    """The export manifest of ``folder`` (an export folder or its ``unet.onnx``)."""
    folder = Path(folder)
    if folder.is_file():
        folder = folder.parent
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise BadInputError(f"{folder} has no {MANIFEST_NAME}; point at a folder written by `maskattn-trt export`")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BadInputError(f"export manifest {path} is corrupted ({exc}); re-run `maskattn-trt export`") from exc
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise BadInputError(f"{path} has format {found!r}, expected {EXPORT_FORMAT!r}; re-run `maskattn-trt export`")
    return data


def is_export_folder(folder: str | Path) -> bool:
    """True when ``folder`` holds a manifest of ours (a previous export, which ``export`` may replace)."""
    try:
        read_manifest(folder)
    except (BadInputError, OSError, UnicodeDecodeError):
        return False
    return True


@dataclass(frozen=True)
class ExportArtifact:
    """A loaded export: its graph path, IO spec and manifest (empty for a bare ``.onnx`` + ``io_spec.json``)."""

    onnx_path: Path
    io_spec: UNetIOSpec
    manifest: dict = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return self.onnx_path.parent

    @property
    def gates_hash(self) -> str | None:
        return self.manifest.get("gates_hash")

    @property
    def gate_checkpoint(self) -> dict:
        return self.manifest.get("gate_checkpoint") or {}

    def onnx_sha256(self) -> str:
        """The graph file's sha256, checked against the manifest's record (a graph modified after export is
        refused)."""
        actual = sha256_file(self.onnx_path)
        recorded = self.manifest.get("onnx_sha256")
        if recorded is not None and recorded != actual:
            raise BadInputError(f"{self.onnx_path} does not match the sha256 in {self.folder / MANIFEST_NAME} "
                                "(modified after export?); re-run `maskattn-trt export`")
        return actual


def open_export(path: str | Path, *, require_manifest: bool = False) -> ExportArtifact:
    """An export folder or its ``unet.onnx`` -> :class:`ExportArtifact` (IO spec required; the manifest too when
    ``require_manifest``)."""
    onnx_path = resolve_onnx(path)
    io_spec = UNetIOSpec.load(onnx_path.parent / IO_SPEC_NAME)
    has_manifest = (onnx_path.parent / MANIFEST_NAME).is_file()
    manifest = read_manifest(onnx_path.parent) if has_manifest or require_manifest else {}
    return ExportArtifact(onnx_path, io_spec, manifest)
