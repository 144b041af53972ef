"""``maskattn-trt export`` as a library call: model + gates + pixel ranges -> an export folder.

Users think in pixels; the graph sees latents (pixels / VAE scale). Pixel ranges are validated and converted
by :func:`maskattn_trt.spec.resolve_profile` (one place for that logic), then recorded in the IO spec. The
model comes from the one loader (:mod:`maskattn_trt.models`), directly in the export dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..artifacts import is_export_folder
from ..errors import BadInputError
from ..gates import attach_gates, cast_unet, check_gate_heads, gate_processors
from ..models import TINY_VAE_SCALE, load_unet, unet_architecture, vae_scale_of
from ..spec import Range, UNetIOSpec, resolve_profile
from ..utils.io import claim_output_dir
from .onnx import ExportResult, export_unet, resolve_opset

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
    force: bool = False  # replace a non-empty --out that is not a previous export


def _default_pixels(vae_scale: int) -> str:
    return "32:64:128" if vae_scale == TINY_VAE_SCALE else "512:1024:1024"


def resolve_spec(base: UNetIOSpec, batch: str, height: str | None, width: str | None, static: bool) -> UNetIOSpec:
    """Batch and pixel ranges -> the IO spec's latent ranges (validated: multiples of 8, on the latent grid)."""
    default = _default_pixels(base.vae_scale)
    wide = base.replace(batch=_WIDE, height=_WIDE, width=_WIDE)
    profile = resolve_profile(wide, batch, height or default, width or default, static)
    return base.replace(batch=profile.batch, height=profile.height, width=profile.width)


def export_model(request: ExportRequest, progress: bool = True) -> ExportResult:
    """Validate every option, then load the model in the export dtype, attach the gates and export it."""
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
