"""Open the runners for ``--backend eager|onnxruntime|tensorrt`` and refuse ones made for another model.

``--onnx`` / ``--engine`` may be one UNet folder / engine (the text encoders and VAE then run eagerly, as
before) or an export tree / engine folder holding every component: ``components`` chooses which of them the
backend runs (``auto``: every component found; ``unet``: the UNet only; ``all``; or a comma list such as
``unet,vae_decoder``); the others fall back to eager PyTorch.

Every check happens before any work: the runner's IO spec must match the pipeline (cross-attention width,
pooled text width, latent channels, VAE scale) and, when the export manifest records it, the UNet
architecture fingerprint; gates given with ``--gates`` must be the ones baked into an export or engine.
Heavy backends are imported lazily.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from .. import models
from ..artifacts import open_engine_tree, open_export_tree
from ..component_spec import COMPONENTS, TEXT_COMPONENTS
from ..errors import BadInputError
from ..gates import (
    fingerprint_matches,
    gate_processors,
    gates_hash,
    gates_hashes,
    load_gates,
    unet_fingerprint,
)
from ..models import RANDOM_TINY
from ..runners import EagerRunner, OrtRunner, Runner, TrtRunner, require_gpu
from ..spec import DTYPES, Range, UNetIOSpec
from ..utils.io import sha256_file

BACKENDS = ("eager", "onnxruntime", "tensorrt")
_ANY = Range(1, 2, 1 << 16)


@dataclass
class Backend:
    """A runner ready to activate, plus what the image sidecars record about it."""

    name: str
    runner: Runner
    artifact: str | None = None
    gates: dict = field(default_factory=dict)  # gates_hash, checkpoint, checkpoint_sha256, source
    components: dict[str, Runner] = field(default_factory=dict)  # text encoders / VAE decoder run by the backend

    def placement(self) -> dict[str, str]:
        """Component -> who runs it (``eager`` for those left to PyTorch)."""
        return {c: (self.name if c == "unet" or c in self.components else "eager") for c in COMPONENTS}

    @contextlib.contextmanager
    def activate(self) -> Iterator[Backend]:
        """Activate the UNet runner and every component runner; release them all on exit."""
        with contextlib.ExitStack() as stack:
            for runner in (self.runner, *self.components.values()):
                stack.enter_context(runner)
            yield self


def parse_components(text: str | None) -> str | tuple[str, ...]:
    """``auto`` | ``all`` | a comma list of components (must include ``unet``)."""
    text = (text or "auto").strip()
    if text in ("auto", "all"):
        return text
    names = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown or "unet" not in names:
        raise BadInputError(f"--components must be auto, all or a comma list of {', '.join(COMPONENTS)} that "
                            f"includes unet; got {text!r}")
    return names


def _chosen(found: dict, components, where: str) -> list[str]:
    """The non-UNet components the backend runs, from what ``where`` holds."""
    wanted = parse_components(components) if isinstance(components, str) or components is None else components
    if wanted == "auto":
        return [c for c in COMPONENTS if c != "unet" and c in found]
    names = [c for c in COMPONENTS if c != "unet"] if wanted == "all" else [c for c in wanted if c != "unet"]
    missing = [c for c in names if c not in found]
    if missing:
        raise BadInputError(f"{where} holds no {', '.join(missing)} (it has {', '.join(found) or 'nothing'}); "
                            "export them with `maskattn-trt export --component all` (and build them with "
                            "`build-engine` on the tree), or pass --components unet to run them in PyTorch")
    return names


def check_component_fits(spec, pipe, artifact: str, manifest: dict | None = None, model: str | None = None) -> None:
    """Refuse a text encoder / VAE decoder export or engine made for another pipeline."""
    if spec.component in TEXT_COMPONENTS:
        encoder = getattr(pipe, spec.component, None)
        if encoder is not None:
            cfg = encoder.config
            expected = {"hidden_size": cfg.hidden_size, "vocab_size": cfg.vocab_size}
            if spec.component == "text_encoder_2":
                expected["projection_dim"] = cfg.projection_dim
        else:
            expected = {}
    else:
        expected = {"vae_scale": pipe.vae_scale_factor, "latent_channels": pipe.vae.config.latent_channels,
                    "scaling_factor": float(pipe.vae.config.scaling_factor)}
    for key, value in expected.items():
        if getattr(spec, key) != value:
            raise BadInputError(f"{artifact} was made for another model: its {key} is {getattr(spec, key)}, this "
                                f"pipeline's is {value}; pass the --model it was exported from, or re-export")
    manifest = manifest or {}
    if model == RANDOM_TINY and manifest.get("model") == RANDOM_TINY and manifest.get("seed") not in (None, 0):
        raise BadInputError(f"{artifact} holds tiny weights made with seed {manifest['seed']}, the tiny pipeline "
                            "here uses seed 0; re-export with `maskattn-trt export --model tiny-random --seed 0`")


def load_model(model: str, backend: str):
    """(pipeline, UNet for checks). A folder opened for an exported backend skips the UNet's weights: its
    architecture is built on the meta device (for the fingerprint and gate hashing)."""
    if backend not in BACKENDS:
        raise BadInputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return models.load_model(model, unet_weights=backend == "eager")


def check_fits(spec: UNetIOSpec, pipe, unet, artifact: str, manifest: dict | None = None, model: str | None = None) -> None:
    """Refuse an export / engine whose IO spec (or recorded UNet fingerprint / tiny weight seed) is not this
    pipeline's."""
    expected = {
        "cross_attention_dim": unet.config.cross_attention_dim,
        "text_embeds_dim": pipe.text_encoder_2.config.projection_dim,
        "in_channels": unet.config.in_channels,
        "vae_scale": pipe.vae_scale_factor,
    }
    for key, value in expected.items():
        if getattr(spec, key) != value:
            raise BadInputError(f"{artifact} was made for another model: its {key} is {getattr(spec, key)}, this "
                                f"pipeline's is {value}; pass the --model it was exported from, or re-export")
    recorded = (manifest or {}).get("unet_fingerprint")
    if recorded and not fingerprint_matches(unet, recorded):
        raise BadInputError(f"{artifact} was exported from another UNet architecture (fingerprint {recorded[:12]}, "
                            f"this model {unet_fingerprint(unet)[:12]}); pass the --model it was exported from")
    manifest = manifest or {}
    if model == RANDOM_TINY and manifest.get("model") == RANDOM_TINY and manifest.get("seed") not in (None, 0):
        raise BadInputError(f"{artifact} holds tiny UNet weights made with seed {manifest['seed']}, the tiny pipeline "
                            "here uses seed 0; re-export with `maskattn-trt export --model tiny-random --seed 0`")


def _checkpoint_gates(unet, gates_path) -> dict:
    load_gates(unet, gates_path)
    return {"gates_hash": gates_hash(unet), "checkpoint": str(gates_path),
            "checkpoint_sha256": sha256_file(gates_path), "accepted_hashes": sorted(gates_hashes(unet))}


def _as_recorded(given: dict, recorded: str | None) -> str | None:
    """The given gates' hash as an artifact records it (those made before fingerprint v2 hash them differently)."""
    return recorded if given and recorded in given["accepted_hashes"] else given.get("gates_hash")


def _refuse_other_gates(artifact: str, baked: str | None, given: dict) -> None:
    if given and baked not in given["accepted_hashes"]:
        found = f"gates {baked[:12]}" if baked else "no gates (an open-gate export)"
        raise BadInputError(f"{artifact} holds {found}, but --gates {given['checkpoint']} has gates "
                            f"{given['gates_hash'][:12]}; export / build again with these gates or drop --gates")


def open_backend(pipe, unet, backend: str, *, model: str | None = None, onnx=None, engine=None, gates_path=None, gate_outputs: bool = False,
                 threads: int | None = None, providers=None, components: str | tuple[str, ...] | None = "auto") -> Backend:
    """Build (not yet activate) the runners of ``backend`` and check they fit the pipeline and gates."""
    if backend == "eager":
        if onnx or engine:
            raise BadInputError("--onnx / --engine belong to --backend onnxruntime / tensorrt, not eager")
        gates = _checkpoint_gates(unet, gates_path) if gates_path else {}
        # The feed must carry the UNet's own dtype: an fp16 UNet (CUDA) fed fp32 fails in its time embedding.
        dtype = "fp16" if unet.dtype == DTYPES["fp16"] else "fp32"
        spec = UNetIOSpec.for_unet(unet, dtype=dtype, vae_scale=pipe.vae_scale_factor, batch=_ANY, height=_ANY, width=_ANY)
        if gate_outputs:
            sites = list(gate_processors(unet))
            if not sites:
                raise BadInputError("gate maps need gates: pass --gates CHECKPOINT (from train, convert-gates or "
                                    "the demo's gates_random.safetensors)")
            spec = spec.with_gate_outputs(sites)
        return Backend("eager", EagerRunner(unet, spec), None, gates)
    if backend == "onnxruntime":
        return _ort_backend(pipe, unet, model, onnx, engine, gates_path, gate_outputs, threads, providers, components)
    if backend == "tensorrt":
        return _trt_backend(pipe, unet, model, onnx, engine, gates_path, gate_outputs, components)
    raise BadInputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def _need_gate_outputs(spec: UNetIOSpec, artifact: str, gate_outputs: bool) -> None:
    if gate_outputs and not spec.gate_sites:
        raise BadInputError(f"{artifact} has no gate outputs; gate maps need an export made with "
                            "`maskattn-trt export ... --gate-outputs` (or --backend eager)")


def _unet_of(found: dict, where) -> object:
    if "unet" not in found:
        raise BadInputError(f"{where} holds the {', '.join(found)}, not a UNet; pass the UNet's folder / engine or "
                            "an export tree / engine folder with every component")
    return found["unet"]


def _ort_backend(pipe, unet, model, onnx, engine, gates_path, gate_outputs, threads, providers,
                 components) -> Backend:
    if not onnx or engine:
        raise BadInputError("--backend onnxruntime needs --onnx DIR (a folder from `maskattn-trt export`) and "
                            "no --engine")
    tree = open_export_tree(onnx)
    export = _unet_of(tree, onnx)
    extra = {}
    for name in _chosen(tree, components, str(onnx)):
        check_component_fits(tree[name].io_spec, pipe, str(tree[name].onnx_path), tree[name].manifest, model)
        extra[name] = OrtRunner(tree[name], providers=providers, threads=threads, spinning=False)
    manifest = export.manifest
    # Idle ORT threads must not busy-wait: the scheduler, text encoders and VAE run in torch between UNet calls.
    runner = OrtRunner(export, providers=providers, threads=threads, spinning=False)
    artifact = str(export.onnx_path)
    check_fits(runner.spec, pipe, unet, artifact, manifest, model)
    _need_gate_outputs(runner.spec, artifact, gate_outputs)
    given = _checkpoint_gates(unet, gates_path) if gates_path else {}
    _refuse_other_gates(artifact, export.gates_hash, given)
    gates = given or {"gates_hash": export.gates_hash, "checkpoint": export.gate_checkpoint.get("path"),
                      "checkpoint_sha256": export.gate_checkpoint.get("sha256")}
    return Backend("onnxruntime", runner, artifact, gates, extra)


def _trt_backend(pipe, unet, model, onnx, engine, gates_path, gate_outputs, components) -> Backend:
    if not engine or onnx:
        raise BadInputError("--backend tensorrt needs --engine PATH (from `maskattn-trt build-engine`) and no --onnx")
    require_gpu(f"--backend tensorrt (engine {engine})")
    found = open_engine_tree(engine)
    artifact = _unet_of(found, engine)
    extra = {}
    for name in _chosen(found, components, str(engine)):
        check_component_fits(found[name].io_spec, pipe, str(found[name].engine_path), found[name].export_manifest,
                             model)
        extra[name] = TrtRunner(found[name])
    given = _checkpoint_gates(unet, gates_path) if gates_path else {}
    runner = TrtRunner(artifact, gates_hash=_as_recorded(given, artifact.gates_hash))
    check_fits(runner.spec, pipe, unet, str(engine), artifact.export_manifest, model)
    _need_gate_outputs(runner.spec, str(engine), gate_outputs)
    _refuse_other_gates(str(engine), artifact.gates_hash, given)
    return Backend(runner.name, runner, str(artifact.engine_path), given or {"gates_hash": artifact.gates_hash},
                   extra)
