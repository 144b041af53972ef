"""``maskattn-trt export`` as a library call: model + gates + pixel ranges -> an export folder.

Users think in pixels; the graph sees latents (pixels / VAE scale). Pixel ranges are validated and converted
by the engine package's profile resolver (one place for that logic), then recorded in the IO spec.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInputError
from ..spec import Range, UNetIOSpec
from .onnx import ExportResult, cast_unet, check_gate_heads, export_unet
from .source import attach_gates, load_unet_for_export

TINY_VAE_SCALE = 2  # the tiny offline VAE has two blocks
SDXL_VAE_SCALE = 8
_WIDE = Range(1, 1, 1 << 20)


@dataclass(frozen=True)
class ExportRequest:
    """Everything ``maskattn-trt export`` needs (``height``/``width`` in PIXELS, ``MIN:OPT:MAX`` or one value)."""

    out: Path
    model: str = "tiny"
    gates: Path | None = None
    open_gates: bool = False
    dtype: str = "fp32"
    opset: int = 17
    batch: str = "1:2:4"
    height: str | None = None
    width: str | None = None
    static: bool = False
    gate_outputs: bool = False
    exporter: str = "torchscript"
    slim: bool = True
    seed: int = 0
    gate_heads: str = "fp32"


def vae_scale_of(model: str) -> int:
    """Latent -> pixel factor of the model's VAE: 2 for ``tiny``, 8 for SDXL (read from a folder's VAE config)."""
    if model == "tiny":
        return TINY_VAE_SCALE
    path = Path(model).expanduser() / "vae" / "config.json"
    if path.is_file():
        try:
            blocks = json.loads(path.read_text()).get("block_out_channels", [0, 0, 0, 0])
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{path} is not valid JSON ({exc})") from exc
        return 2 ** (len(blocks) - 1)
    return SDXL_VAE_SCALE


def _default_pixels(vae_scale: int) -> str:
    return "32:64:128" if vae_scale == TINY_VAE_SCALE else "512:1024:1024"


def resolve_spec(base: UNetIOSpec, batch: str, height: str | None, width: str | None, static: bool) -> UNetIOSpec:
    """Batch and pixel ranges -> the IO spec's latent ranges (validated: multiples of 8, on the latent grid)."""
    from ..engines.profiles import resolve_profile

    default = _default_pixels(base.vae_scale)
    wide = base.replace(batch=_WIDE, height=_WIDE, width=_WIDE)
    profile = resolve_profile(wide, batch, height or default, width or default, static)
    return base.replace(batch=profile.batch, height=profile.height, width=profile.width)


def _architecture(model: str):
    """An object with the UNet's ``.config`` (for the IO spec), without loading any weights."""
    from types import SimpleNamespace

    from ..models import UNET_PRESETS, build_unet

    if model in UNET_PRESETS:
        return build_unet(model, device="meta")
    from diffusers import UNet2DConditionModel

    from ..models.loading import _check_sdxl_folder

    path = Path(model).expanduser()
    _check_sdxl_folder(path)
    return SimpleNamespace(config=SimpleNamespace(**UNet2DConditionModel.load_config(path, subfolder="unet")))


def export_model(request: ExportRequest, progress: bool = True) -> ExportResult:
    """Validate every option, then load the model in the export dtype, attach the gates and export it."""
    from ..utils.io import ensure_writable_dir

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
    out = Path(request.out)
    if out.exists() and not out.is_dir():
        raise BadInputError(f"output path {out} exists and is not a folder; choose another --out")
    if out.exists():
        ensure_writable_dir(out)
    else:
        ensure_writable_dir(out.parent)
    base = UNetIOSpec.for_unet(_architecture(request.model), dtype=request.dtype,
                               vae_scale=vae_scale_of(request.model))
    spec = resolve_spec(base, request.batch, request.height, request.width, request.static)
    unet = load_unet_for_export(request.model, request.dtype, request.seed)
    attach_gates(unet, request.gates, request.open_gates)
    cast_unet(unet, request.dtype, request.gate_heads)  # gate heads fp16 only where asked (Turing targets)
    if request.gate_outputs:
        from ..gates import gate_processors

        spec = spec.with_gate_outputs(list(gate_processors(unet)))
    source = {"model": request.model, "seed": request.seed,
              "gate_checkpoint": str(request.gates) if request.gates else None}
    return export_unet(unet, out, spec, opset=request.opset, exporter=request.exporter, slim=request.slim,
                       open_gates=request.open_gates, source=source, progress=progress, gate_heads=request.gate_heads)
