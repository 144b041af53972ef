"""The engine file and its manifest: what an engine was built from, so a stale or foreign engine is refused.

A manifest ``<stem>.manifest.json`` sits beside each ``<stem>.engine`` and records the ONNX sha256, the gate
hash, builder and version, compute capability, profile, precision, refittability, build time and the engine's
own sha256 (so an engine swapped under an old manifest is caught too). Engines are cached by content, never by
file existence (DESIGN.md decision 6).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..component_spec import COMPONENTS, IOSpec, component_of, io_spec_from_dict
from ..errors import BadInputError, EngineBuildError
from ..utils.io import sha256_file, write_json_atomic
from .export import MANIFEST_NAME, read_manifest

ENGINE_FORMAT = "maskattn-trt-engine-v1"


def engine_name(component: str) -> str:
    """The file name of a component's engine inside an engine folder (``build-engine`` on an export tree)."""
    return f"{component}.engine"


def engine_manifest_path(engine_path: str | os.PathLike) -> Path:
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
    format: str = ENGINE_FORMAT

    def spec(self) -> IOSpec:
        return io_spec_from_dict(self.io_spec)

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
            if data.get("format") != ENGINE_FORMAT:
                raise EngineBuildError(f"{path} has format {data.get('format')!r}, expected {ENGINE_FORMAT!r}; rebuild")
            return cls(**data)
        except (json.JSONDecodeError, TypeError, AttributeError) as exc:
            raise EngineBuildError(f"engine manifest {path} is corrupted ({exc}); rebuild the engine") from exc


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


@dataclass(frozen=True)
class EngineArtifact:
    """A loaded engine reference: its path, its manifest, and the export manifest it was built from (if still
    beside the ONNX it names)."""

    engine_path: Path
    manifest: EngineManifest
    export_manifest: dict = field(default_factory=dict)

    @property
    def io_spec(self) -> IOSpec:
        return self.manifest.spec()

    @property
    def component(self) -> str:
        return component_of(self.io_spec)

    @property
    def gates_hash(self) -> str | None:
        return self.manifest.gates_hash


def open_engine(path: str | os.PathLike) -> EngineArtifact:
    """An engine file -> :class:`EngineArtifact` (its manifest must be beside it)."""
    engine_path = Path(path)
    if not engine_path.is_file():
        raise EngineBuildError(f"engine {engine_path} does not exist; build it with `maskattn-trt build-engine`")
    manifest = EngineManifest.load(engine_manifest_path(engine_path))
    export_folder = Path(manifest.onnx_path).parent
    export_manifest = read_manifest(export_folder) if (export_folder / MANIFEST_NAME).is_file() else {}
    return EngineArtifact(engine_path, manifest, export_manifest)


def open_engine_tree(path: str | os.PathLike) -> dict[str, EngineArtifact]:
    """An engine folder (``build-engine`` on an export tree: ``<component>.engine`` + manifests) or one engine
    file -> {component: artifact}."""
    path = Path(path)
    if path.is_dir():
        found = {c: open_engine(path / engine_name(c)) for c in COMPONENTS if (path / engine_name(c)).is_file()}
        if not found:
            raise BadInputError(f"{path} holds no engines ({', '.join(engine_name(c) for c in COMPONENTS)}); build "
                                "them with `maskattn-trt build-engine --onnx EXPORT_TREE --out FOLDER`")
        for component, artifact in found.items():
            if artifact.component != component:
                raise BadInputError(f"{artifact.engine_path} holds the {artifact.component}, not the {component}")
        return found
    artifact = open_engine(path)
    return {artifact.component: artifact}
