"""``maskattn-trt export`` as a library call: model + gates + pixel ranges -> an export folder.

Users think in pixels; the graph sees latents (pixels / VAE scale). Pixel ranges are validated and converted
by :func:`maskattn_trt.spec.resolve_profile` (one place for that logic), then recorded in the IO spec. The
model comes from the one loader (:mod:`maskattn_trt.models`), directly in the export dtype.

``component`` picks the graph: ``unet`` (the default), ``text_encoder``, ``text_encoder_2``, ``vae_decoder``, or
``all`` (one folder per component under ``out``: an export tree that ``generate --onnx`` runs end to end).
The VAE decoder's precision is ``vae_dtype`` (fp32 by default: the SDXL VAE overflows in fp16).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..artifacts import is_export_folder, tree_components
from ..component_spec import (
    COMPONENTS,
    TEXT_COMPONENTS,
    TextEncoderIOSpec,
    VaeDecoderIOSpec,
    resolve_engine_profile,
)
from ..errors import BadInputError
from ..gates import attach_gates, cast_unet, check_gate_heads, gate_processors
from ..models import (
    SDXL_VAE_SCALE,
    component_module,
    load_pipeline,
    load_unet,
    quiet_diffusers,
    unet_architecture,
    vae_scale_of,
)
from ..spec import DTYPES, Range, UNetIOSpec, resolve_profile
from ..utils.io import claim_output_dir, ensure_writable_dir
from .components import export_component
from .onnx import ExportResult, export_unet, resolve_opset

EXPORT_COMPONENTS = (*COMPONENTS, "all")

_WIDE = Range(1, 1, 1 << 20)


@dataclass(frozen=True)
class ExportRequest:
    """Everything ``maskattn-trt export`` needs (``height``/``width`` in PIXELS, ``MIN:OPT:MAX`` or one value)."""

    out: Path
    model: str = "tiny"
    gates: Path | None = None
    open_gates: bool = False
    dtype: str = "fp32"
    opset: int | None = None  # None = the exporter's default (torchscript 17, dynamo 18)
    batch: str = "1:2:4"
    height: str | None = None
    width: str | None = None
    static: bool = False
    gate_outputs: bool = False
    exporter: str = "torchscript"
    slim: bool = True
    seed: int = 0
    gate_heads: str = "fp32"
    component: str = "unet"
    vae_dtype: str = "fp32"
    force: bool = False  # replace a non-empty --out that is not a previous export


def _default_pixels(vae_scale: int) -> str:
    # the tiny models (VAE scale 2 or 4): 16..64 latents around their drawing size; SDXL: 512..1024 px
    return f"{16 * vae_scale}:{32 * vae_scale}:{64 * vae_scale}" if vae_scale < SDXL_VAE_SCALE else "512:1024:1024"


def resolve_spec(base, batch: str, height: str | None, width: str | None, static: bool) -> UNetIOSpec:
    """Batch and pixel ranges -> the IO spec's latent ranges (validated: multiples of 8, on the latent grid)."""
    if not hasattr(base, "height"):  # a text encoder: batch only
        profile = resolve_engine_profile(base.replace(batch=_WIDE), batch, None, None, static)
        return base.replace(batch=profile.batch)
    default = _default_pixels(base.vae_scale)
    wide = base.replace(batch=_WIDE, height=_WIDE, width=_WIDE)
    profile = resolve_profile(wide, batch, height or default, width or default, static)
    return base.replace(batch=profile.batch, height=profile.height, width=profile.width)


def _check_request(request: ExportRequest) -> None:
    if request.component not in EXPORT_COMPONENTS:
        raise BadInputError(f"--component must be one of {', '.join(EXPORT_COMPONENTS)}; got {request.component!r}")
    if request.component not in ("unet", "all"):
        if request.gates is not None or request.open_gates or request.gate_outputs:
            raise BadInputError(f"--gates / --open-gates / --gate-outputs apply to the UNet, not the "
                                f"{request.component}; drop them (or use --component unet|all)")
        if request.component == "vae_decoder" and request.dtype != "fp32":
            raise BadInputError("the VAE decoder's precision is --vae-dtype (default fp32: the SDXL VAE overflows in "
                                "fp16), not --dtype; pass --vae-dtype fp16 to try fp16")
    if request.vae_dtype not in ("fp32", "fp16"):
        raise BadInputError(f"--vae-dtype must be fp32 or fp16; got {request.vae_dtype!r}")


def export_components(request: ExportRequest, progress: bool = True) -> list[ExportResult]:
    """``export --component``: one result for one component, four (an export tree under ``out``) for ``all``."""
    _check_request(request)
    if request.component == "unet":
        return [export_model(request, progress)]
    if request.component == "all":
        out = claim_output_dir(request.out, ours=lambda folder: bool(tree_components(folder)),
                               what="a previous export tree (no component subfolders)", force=request.force)
    else:
        out = claim_output_dir(request.out, ours=is_export_folder, what="a previous export (no export manifest.json)",
                               force=request.force)
    ensure_writable_dir(out.parent)
    if request.component == "all":
        export_model_check(request)  # the UNet's options, before any export starts
        ensure_writable_dir(out)
        results = [export_model(dataclasses.replace(request, out=out / "unet", component="unet"), progress)]
        names = [c for c in COMPONENTS if c != "unet"]
    else:
        results, names = [], [request.component]
    pipe = load_pipeline(request.model, seed=request.seed)
    for name in names:
        folder = out / name if request.component == "all" else out
        results.append(export_pipeline_component(pipe, name, folder, request, progress))
    return results


def export_pipeline_component(pipe, component: str, out: Path, request: ExportRequest,
                              progress: bool = True) -> ExportResult:
    """Export one text encoder or the VAE decoder of ``pipe`` to ``out`` with the request's ranges."""
    module = component_module(pipe, component)
    dtype = request.vae_dtype if component == "vae_decoder" else request.dtype
    if next(module.parameters()).dtype != DTYPES[dtype]:
        with quiet_diffusers():  # diffusers warns on every ModelMixin.to(dtype)
            module = copy.deepcopy(module).to(DTYPES[dtype])
    if component in TEXT_COMPONENTS:
        tokens = int(getattr(pipe, "tokenizer_2" if component == "text_encoder_2" else "tokenizer").model_max_length)
        base = TextEncoderIOSpec.for_encoder(component, module, tokens=tokens, dtype=dtype)
    else:
        base = VaeDecoderIOSpec.for_vae(module, dtype=dtype)
    spec = resolve_spec(base, request.batch, request.height, request.width, request.static)
    source = {"model": request.model, "seed": request.seed}
    return export_component(module, out, spec, opset=resolve_opset("torchscript", request.opset), slim=request.slim,
                            source=source,
                            progress=progress)


def export_model_check(request: ExportRequest) -> None:
    """The UNet's gate options, validated before any work."""
    if request.gates is not None and request.open_gates:
        raise BadInputError("pass either --gates CHECKPOINT or --open-gates, not both")
    if request.gates is None and not request.open_gates:
        raise BadInputError("pass --gates CHECKPOINT (from train / convert-gates) or --open-gates for a "
                            "stock-equivalent graph")
    if request.gate_outputs and request.open_gates:
        raise BadInputError("--gate-outputs needs gates (--gates CHECKPOINT); an open-gate export has none")
    check_gate_heads(request.dtype, request.gate_heads)
    if request.gate_heads != "fp32" and request.open_gates:
        raise BadInputError("--gate-heads fp16 needs gates (--gates CHECKPOINT); an open-gate export has no gate heads")


def export_model(request: ExportRequest, progress: bool = True) -> ExportResult:
    """Validate every option, then load the model in the export dtype, attach the gates and export the UNet."""
    export_model_check(request)
    resolve_opset(request.exporter, request.opset)
    out = claim_output_dir(request.out, ours=is_export_folder, what="a previous export (no export manifest.json)",
                           force=request.force)
    base = UNetIOSpec.for_unet(unet_architecture(request.model), dtype=request.dtype,
                               vae_scale=vae_scale_of(request.model))
    spec = resolve_spec(base, request.batch, request.height, request.width, request.static)
    unet = load_unet(request.model, request.seed, dtype=request.dtype)
    attach_gates(unet, request.gates, request.open_gates)
    cast_unet(unet, request.dtype, request.gate_heads)  # gate heads fp16 only where asked (Turing targets)
    if request.gate_outputs:
        spec = spec.with_gate_outputs(list(gate_processors(unet)))
    source = {"model": request.model, "seed": request.seed,
              "gate_checkpoint": str(request.gates) if request.gates else None}
    return export_unet(unet, out, spec, opset=request.opset, exporter=request.exporter, slim=request.slim,
                       open_gates=request.open_gates, source=source, progress=progress, gate_heads=request.gate_heads,
                       force=request.force)
