"""The export manifest (``manifest.json`` beside ``unet.onnx``): what was exported, from what, with what.

The engine builder reads ``onnx_sha256`` and ``gates_hash`` from it; ``parity`` reads ``model``, ``seed`` and
the gate checkpoint to rebuild the eager reference the graph came from.
"""

from __future__ import annotations

import datetime as _dt
import json
from importlib import metadata
from pathlib import Path

from ..errors import BadInputError

FORMAT = "maskattn-trt-export-v1"
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
    if data.get("format") != FORMAT:
        raise BadInputError(f"{path} has format {data.get('format')!r}, expected {FORMAT!r}; re-run `maskattn-trt export`")
    return data


def resolve_onnx(path: str | Path) -> Path:
    """An export folder or a ``.onnx`` file -> the ``.onnx`` file, with a clear error when absent."""
    path = Path(path)
    onnx_path = path / ONNX_NAME if path.is_dir() else path
    if not onnx_path.is_file():
        raise BadInputError(f"no ONNX graph at {onnx_path}; pass a folder written by `maskattn-trt export` "
                            "or its unet.onnx")
    return onnx_path
