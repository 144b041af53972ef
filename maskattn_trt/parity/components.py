"""Parity of the text encoders and the VAE decoder: eager fp32 (rebuilt from the manifest's model and seed)
vs ONNX Runtime (vs an engine), with the explicit tolerances of
:data:`maskattn_trt.component_spec.COMPONENT_TOLERANCES` (text encoders rel L2 <= 1e-5; VAE image max abs
<= 1e-3 in 0..1, fp32).

Feeds: text encoders get real prompts through the pipeline's own tokenizer plus random token ids, at the
smallest and largest exported batch; the VAE decoder gets unit-variance latents (the scale of the sampler's
final latents) at two exported sizes plus the VAE's own encoding of a synthetic image.
"""

from __future__ import annotations

import torch

from ..artifacts import EngineArtifact, ExportArtifact
from ..component_spec import COMPONENT_TOLERANCES, INPUT_IDS, LATENT, TEXT_COMPONENTS
from ..errors import BadInputError
from ..models import component_module, load_pipeline
from ..runners import EagerRunner, OrtRunner, Runner, TrtRunner
from .compare import ParityReport, compare_runners
from .feeds import PROMPTS


def component_tolerances(component: str, reference_dtype: str, dtype: str) -> dict:
    key = (component, reference_dtype, dtype)
    if key not in COMPONENT_TOLERANCES:
        raise BadInputError(f"no parity tolerances for the {component} at {reference_dtype} vs {dtype}")
    return dict(COMPONENT_TOLERANCES[key])


def _text_feeds(spec, pipe, seed: int) -> list[tuple[str, dict]]:
    tokenizer = pipe.tokenizer_2 if spec.component == "text_encoder_2" else pipe.tokenizer
    feeds = []
    for i, batch in enumerate(sorted({spec.batch.min, spec.batch.max})):
        feeds.append((f"random ids b{batch}", spec.dummy_inputs(batch, seed=seed + i)))
        texts = [PROMPTS[(i + k) % len(PROMPTS)] for k in range(batch)]
        ids = tokenizer(texts, padding="max_length", max_length=spec.tokens, truncation=True,
                        return_tensors="pt").input_ids
        feeds.append((f"prompts b{batch}", {INPUT_IDS: ids}))
    return feeds


def _vae_feeds(spec, vae, seed: int) -> list[tuple[str, dict]]:
    fp32 = spec.replace(dtype="fp32")
    shapes = [(spec.batch.min, spec.height.opt, spec.width.opt), (spec.batch.max, spec.height.min, spec.width.max)]
    feeds = [(f"random b{b} {h}x{w}", fp32.dummy_inputs(b, h, w, seed=seed + i))
             for i, (b, h, w) in enumerate(dict.fromkeys(shapes))]
    with torch.inference_mode():
        px = spec.height.opt * spec.vae_scale
        y, x = torch.meshgrid(torch.linspace(-1, 1, px), torch.linspace(-1, 1, spec.width.opt * spec.vae_scale),
                              indexing="ij")
        image = torch.stack([x, y, (x * y).sign()]).unsqueeze(0)
        latent = vae.encode(image).latent_dist.mean
        if spec.latents_mean is not None:
            mean = torch.tensor(spec.latents_mean).view(1, -1, 1, 1)
            std = torch.tensor(spec.latents_std).view(1, -1, 1, 1)
            latent = (latent - mean) * spec.scaling_factor / std
        else:
            latent = latent * spec.scaling_factor
    feeds.append((f"encoded image b1 {spec.height.opt}x{spec.width.opt}", {LATENT: latent.float().clone()}))
    return feeds


def component_parity(export: ExportArtifact, *, model: str | None = None, engine: EngineArtifact | None = None,
                     providers=None, seed: int = 0, progress: bool = True) -> ParityReport:
    """Eager fp32 vs ONNX Runtime (and the engine) for one text encoder / VAE decoder export."""
    manifest = export.manifest
    component, spec = export.component, export.io_spec
    model = model or manifest.get("model")
    if not model:
        raise BadInputError("the export manifest does not record its model; pass --model tiny|PATH")
    pipe = load_pipeline(model, seed=manifest.get("seed") or 0)
    module = component_module(pipe, component)
    reference = EagerRunner(module, spec.replace(dtype="fp32"))
    ort_runner = OrtRunner(export, providers=list(providers) if providers else None)
    others: dict[str, Runner] = {"onnxruntime": ort_runner}
    if engine is not None:
        others["tensorrt"] = TrtRunner(engine, onnx_sha256=manifest["onnx_sha256"])
    feeds = _text_feeds(spec, pipe, seed) if component in TEXT_COMPONENTS else _vae_feeds(spec, module, seed)
    tolerances = component_tolerances(component, "fp32", spec.dtype)
    report = compare_runners(reference, others, feeds, tolerances={name: tolerances for name in others},
                             progress=progress)
    report.notes = [f"{component} export {export.onnx_path} ({spec.dtype}); reference: eager fp32 {model}",
                    f"onnxruntime providers: {', '.join(ort_runner.providers)}"]
    return report
