"""Open the runner for ``--backend eager|onnxruntime|tensorrt`` and refuse one made for another model.

Every check happens before any work: the runner's IO spec must match the pipeline (cross-attention width,
pooled text width, latent channels, VAE scale) and, when the export manifest records it, the UNet
architecture fingerprint; gates given with ``--gates`` must be the ones baked into an export or engine.
Heavy backends are imported lazily.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import models
from ..artifacts import open_engine, open_export
from ..errors import BadInputError
from ..gates import (
    fingerprint_matches,
    gate_processors,
    gates_hash,
    gates_hashes,
    load_gates,
    unet_fingerprint,
)
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
    if model == "tiny" and manifest.get("model") == "tiny" and manifest.get("seed") not in (None, 0):
        raise BadInputError(f"{artifact} holds tiny UNet weights made with seed {manifest['seed']}, the tiny pipeline "
                            "here uses seed 0; re-export with `maskattn-trt export --model tiny --seed 0`")


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
                 threads: int | None = None, providers=None) -> Backend:
    """Build (not yet activate) the runner of ``backend`` and check it fits the pipeline and gates."""
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
        return _ort_backend(pipe, unet, model, onnx, engine, gates_path, gate_outputs, threads, providers)
    if backend == "tensorrt":
        return _trt_backend(pipe, unet, model, onnx, engine, gates_path, gate_outputs)
    raise BadInputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def _need_gate_outputs(spec: UNetIOSpec, artifact: str, gate_outputs: bool) -> None:
    if gate_outputs and not spec.gate_sites:
        raise BadInputError(f"{artifact} has no gate outputs; gate maps need an export made with "
                            "`maskattn-trt export ... --gate-outputs` (or --backend eager)")


def _ort_backend(pipe, unet, model, onnx, engine, gates_path, gate_outputs, threads, providers) -> Backend:
    if not onnx or engine:
        raise BadInputError("--backend onnxruntime needs --onnx DIR (a folder from `maskattn-trt export`) and "
                            "no --engine")
    export = open_export(onnx)
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
    return Backend("onnxruntime", runner, artifact, gates)


def _trt_backend(pipe, unet, model, onnx, engine, gates_path, gate_outputs) -> Backend:
    if not engine or onnx:
        raise BadInputError("--backend tensorrt needs --engine PATH (from `maskattn-trt build-engine`) and no --onnx")
    require_gpu(f"--backend tensorrt (engine {engine})")
    artifact = open_engine(engine)
    given = _checkpoint_gates(unet, gates_path) if gates_path else {}
    runner = TrtRunner(artifact, gates_hash=_as_recorded(given, artifact.gates_hash))
    check_fits(runner.spec, pipe, unet, str(engine), artifact.export_manifest, model)
    _need_gate_outputs(runner.spec, str(engine), gate_outputs)
    _refuse_other_gates(str(engine), artifact.gates_hash, given)
    return Backend(runner.name, runner, str(engine), given or {"gates_hash": artifact.gates_hash})
