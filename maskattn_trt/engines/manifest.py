"""Engine manifests: what an engine was built from, so a stale or foreign engine is refused, not used.

A manifest ``<stem>.manifest.json`` sits beside each ``<stem>.engine`` and records the ONNX sha256, the
gate hash, builder and version, compute capability, profile, precision, refittability, build time and the
engine's own sha256 (so an engine swapped under an old manifest is caught too). Engines are cached by
content, never by file existence (DESIGN.md decision 6).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInputError, EngineBuildError
from ..spec import UNetIOSpec
from ..utils.io import sha256_file, write_json_atomic

FORMAT = "maskattn-trt-engine-v1"
ONNX_NAME = "unet.onnx"
IO_SPEC_NAME = "io_spec.json"
EXPORT_MANIFEST_NAME = "manifest.json"


def manifest_path(engine_path: str | os.PathLike) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.stem + ".manifest.json")


@dataclass
class EngineManifest:
    """Everything the runner and ``refit`` need to know about an engine without opening it."""

    engine_sha256: str
    engine_bytes: int
    onnx_path: str
    onnx_sha256: str
    gates_hash: str | None
    builder: str
    builder_version: str
    compute_capabilities: list[str]
    precision: str
    profile: dict
    refittable: bool
    build_seconds: float
    io_spec: dict
    options: dict = field(default_factory=dict)
    refit_map: dict = field(default_factory=dict)
    head_of_site: dict = field(default_factory=dict)
    format: str = FORMAT

    def spec(self) -> UNetIOSpec:
        return UNetIOSpec.from_dict(self.io_spec)

    def save(self, path: str | os.PathLike) -> Path:
        return write_json_atomic(path, self.__dict__)

    @classmethod
    def load(cls, path: str | os.PathLike) -> EngineManifest:
        path = Path(path)
        if not path.is_file():
            raise EngineBuildError(
                f"engine manifest {path} is missing: the engine cannot be checked against its ONNX and gates; "
                "rebuild it with `maskattn-trt build-engine` (or pass --force to use it unchecked)"
            )
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT:
                raise EngineBuildError(f"{path} has format {data.get('format')!r}, expected {FORMAT!r}; rebuild")
            return cls(**data)
        except (json.JSONDecodeError, TypeError) as exc:
            raise EngineBuildError(f"engine manifest {path} is corrupted ({exc}); rebuild the engine") from exc


@dataclass(frozen=True)
class ExportInfo:
    """An export folder (or a bare .onnx with io_spec.json beside it) as the builder sees it."""

    onnx_path: Path
    io_spec: UNetIOSpec
    onnx_sha256: str
    gates_hash: str | None


def read_export(onnx: str | os.PathLike) -> ExportInfo:
    """Locate unet.onnx + io_spec.json; take the ONNX sha256 / gate hash from the export manifest when present."""
    path = Path(onnx)
    if path.is_dir():
        folder, onnx_path = path, path / ONNX_NAME
    else:
        folder, onnx_path = path.parent, path
    if not onnx_path.is_file():
        raise BadInputError(f"no ONNX graph at {onnx_path}; pass an export folder (from `maskattn-trt export`) "
                            "or its unet.onnx")
    io_spec = UNetIOSpec.load(folder / IO_SPEC_NAME)
    export_meta: dict = {}
    meta_path = folder / EXPORT_MANIFEST_NAME
    if meta_path.is_file():
        try:
            export_meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise BadInputError(f"export manifest {meta_path} is corrupted ({exc}); re-run `maskattn-trt export`") from exc
    onnx_sha = _first(export_meta, "onnx_sha256", "sha256")
    actual = sha256_file(onnx_path)
    if onnx_sha is not None and onnx_sha != actual:
        raise BadInputError(f"{onnx_path} does not match the sha256 in {meta_path} (modified after export?); "
                            "re-run `maskattn-trt export`")
    gates = _first(export_meta, "gates_hash", "gate_hash")
    return ExportInfo(onnx_path=onnx_path, io_spec=io_spec, onnx_sha256=actual, gates_hash=gates)


def _first(data: dict, *keys: str):
    for key in keys:
        if data.get(key):
            return data[key]
        nested = data.get("onnx") if isinstance(data.get("onnx"), dict) else {}
        if nested.get(key):
            return nested[key]
    return None


def check_engine(engine_path: str | os.PathLike, manifest: EngineManifest, *, onnx_sha256: str | None = None,
                 gates_hash: str | None = None, device_cc: str | None = None, force: bool = False) -> list[str]:
    """Compare an engine with what it is about to be used with; raise on any mismatch unless ``force``.

    Returns the mismatches found (empty when everything matches; non-empty only with ``force``).
    """
    engine_path = Path(engine_path)
    problems = []
    actual = sha256_file(engine_path)
    if actual != manifest.engine_sha256:
        problems.append(f"the engine file's sha256 {actual[:12]} is not the one its manifest records "
                        f"({manifest.engine_sha256[:12]}): engine and manifest come from different builds")
    if onnx_sha256 is not None and onnx_sha256 != manifest.onnx_sha256:
        problems.append(f"it was built from ONNX {manifest.onnx_sha256[:12]}, not from this ONNX ({onnx_sha256[:12]})")
    if gates_hash is not None and gates_hash != manifest.gates_hash:
        problems.append(f"it carries gates {str(manifest.gates_hash)[:12]}, not these gates ({gates_hash[:12]}); "
                        "refit it (`maskattn-trt refit`) or rebuild")
    if device_cc is not None and manifest.compute_capabilities and device_cc not in manifest.compute_capabilities:
        problems.append(f"it targets {', '.join(manifest.compute_capabilities)}, this GPU is {device_cc}")
    if problems and not force:
        raise EngineBuildError(
            f"refusing stale engine {engine_path}: {'; '.join(problems)}; rebuild it with `maskattn-trt build-engine` "
            "(or pass --force to use it anyway)"
        )
    return problems
