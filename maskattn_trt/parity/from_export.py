"""``maskattn-trt parity`` as a library call: an export folder -> eager reference vs ONNX Runtime (vs engine).

A text encoder / VAE decoder folder goes to :mod:`maskattn_trt.parity.components`; an export tree runs every
component's parity into one report.

The eager reference is rebuilt from what the export manifest records (model, seed, gate checkpoint) and is
always fp32: an fp16 graph is compared against fp32 eager with the ``("fp32", "fp16")`` tolerances. The gate
hash of the rebuilt reference must equal the exported one, so a parity run can never compare against gates
other than the exported ones. Depends on models + gates + artifacts, never on the exporter's internals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..artifacts import open_engine_tree, open_export_tree
from ..errors import BadInputError
from ..gates import attach_gates, gates_hash, gates_hashes, recording_gate_margins
from ..models import RANDOM_TINY, UNET_PRESETS, load_pipeline, load_unet
from ..runners import EagerRunner, OrtRunner, Runner, TrtRunner
from .compare import ParityReport, compare_runners
from .components import component_parity
from .feeds import parity_feeds, parity_shapes


@dataclass(frozen=True)
class ParityRequest:
    onnx: Path
    model: str | None = None
    gates: Path | None = None
    engine: Path | None = None
    providers: tuple[str, ...] | None = None
    prompts: bool = True
    seed: int = 0


def reference_unet(manifest: dict, model: str | None, gates: Path | None):
    """The fp32 eager UNet the export came from, with the exported gates (verified by hash)."""
    model = model or manifest.get("model")
    if not model:
        raise BadInputError("the export manifest does not record its model; pass --model tiny|PATH")
    unet = load_unet(model, manifest.get("seed") or 0)
    if manifest.get("open_gates") or not manifest.get("gates_hash"):
        return model, unet
    ckpt = gates or (manifest.get("gate_checkpoint") or {}).get("path")
    if not ckpt:
        raise BadInputError("this export was made from in-memory gates (no checkpoint recorded); pass --gates CKPT")
    attach_gates(unet, Path(ckpt), open_gates=False)
    if manifest["gates_hash"] not in gates_hashes(unet):  # (older exports hash them with a v1 fingerprint)
        raise BadInputError(f"gates in {ckpt} (hash {gates_hash(unet)[:12]}) are not the exported ones "
                            f"({manifest['gates_hash'][:12]}); pass the checkpoint the graph was exported with")
    return model, unet


def _pipeline_for_prompts(model: str, seed: int):
    """The pipeline whose text encoders make the prompt feeds; None for UNet-only presets."""
    if model in UNET_PRESETS and model != RANDOM_TINY:
        return None
    return load_pipeline(model, seed=seed)


def run_parity(request: ParityRequest, progress: bool = True) -> ParityReport:
    """Parity of one export folder (any component), or of every component of an export tree (one report, case
    labels prefixed by the component); ``request.engine`` is then an engine folder from ``build-engine``."""
    tree = open_export_tree(request.onnx, require_manifest=True)
    engines = open_engine_tree(request.engine) if request.engine is not None else {}
    reports = {}
    for component, export in tree.items():
        engine = engines.get(component)
        if component == "unet":
            reports[component] = _unet_parity(export, request, engine, progress)
        else:
            reports[component] = component_parity(export, model=request.model, engine=engine,
                                                  providers=request.providers, seed=request.seed, progress=progress)
    if len(reports) == 1:
        return next(iter(reports.values()))
    cases, tolerances, notes = [], {}, []
    for component, report in reports.items():
        for case in report.cases:
            case.case = f"{component}: {case.case}"
            cases.append(case)
        tolerances.update({f"{component}/{name}": tol for name, tol in report.tolerances.items()})
        notes += report.notes
    return ParityReport("eager", cases, tolerances, notes)


def _unet_parity(export, request: ParityRequest, engine, progress: bool) -> ParityReport:
    manifest = export.manifest
    ort_runner = OrtRunner(export, providers=list(request.providers) if request.providers else None)
    spec = ort_runner.spec
    model, unet = reference_unet(manifest, request.model, request.gates)
    reference = EagerRunner(unet, spec.replace(dtype="fp32"))
    others: dict[str, Runner] = {"onnxruntime": ort_runner}
    if engine is not None:
        others["tensorrt"] = TrtRunner(engine, onnx_sha256=manifest["onnx_sha256"],
                                       gates_hash=manifest.get("gates_hash"))
    notes = [f"export {export.onnx_path} ({spec.dtype}, {manifest['exporter']}, gates "
             f"{'open' if manifest['open_gates'] else (manifest.get('gates_hash') or 'none')[:12]}); "
             f"reference: eager fp32 {model}"]
    pipe = None
    if request.prompts:
        pipe = _pipeline_for_prompts(model, request.seed)
        if pipe is None:
            notes.append(f"prompt feeds skipped: {model} is a UNet-only preset (no text encoders)")
    feeds = parity_feeds(spec, pipe, seed=request.seed, shapes=parity_shapes(spec))
    with recording_gate_margins(unet) as margins:
        report = compare_runners(reference, others, feeds, progress=progress, reference_margins=margins)
    report.notes = notes + [f"onnxruntime providers: {', '.join(ort_runner.providers)}"]
    return report
