"""Shape, dtype and tolerance facts of the exported UNet graph, and nothing else.

One IO spec (names, dtypes, dynamic axes, min/opt/max profiles, dummy inputs), one dtype table, one
``time_ids`` builder, one tolerance table per precision pair, and the pixel -> latent profile resolution.
Exporter, runners, engine builder, sampler and parity harness all read shapes from here (the pattern of
optimum's declarative ``OnnxConfig``), so shape logic is written once. The graph has the inputs and outputs of
a stock SDXL UNet; with gate outputs it also returns each site's hard gate ``gate:<site>`` [B, N, T].
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .errors import BadInputError
from .utils.io import write_json_atomic

INPUT_NAMES = ("sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids")
OUTPUT_NAME = "noise_pred"
GATE_PREFIX = "gate:"
PIXEL_MULTIPLE = 8
# The one dtype table: our name -> (torch dtype, ONNX TensorProto element type, TensorRT DataType name).
DTYPE_TABLE = {
    "fp32": (torch.float32, 1, "FLOAT"),
    "fp16": (torch.float16, 10, "HALF"),
    "bf16": (torch.bfloat16, 16, "BF16"),
    "fp64": (torch.float64, 11, "DOUBLE"),
    "int64": (torch.int64, 7, "INT64"),
    "int32": (torch.int32, 6, "INT32"),
    "bool": (torch.bool, 9, "BOOL"),
}
DTYPES = {name: DTYPE_TABLE[name][0] for name in ("fp32", "fp16")}  # graph / engine precisions
TRAIN_DTYPES = {name: DTYPE_TABLE[name][0] for name in ("fp32", "bf16", "fp16")}  # frozen-backbone precisions
ONNX_DTYPE_NAMES = {onnx_type: name for name, (_, onnx_type, _) in DTYPE_TABLE.items()}
TRT_TORCH_DTYPES = {trt_name: torch_dtype for torch_dtype, _, trt_name in DTYPE_TABLE.values()}

# Explicit parity tolerances per precision pair (reference, other):
# - noise_pred: (max abs, relative L2);
# - gate_agreement: the fraction of (position, token) gate decisions that must agree per site;
# - gate_logit_margin: how far from the threshold (in logits) a reference gate logit may lie for a flip to count
#   as rounding: an fp32 graph reproduces eager logits to ~1e-5; fp16 activations move them by up to a few 1e-2
#   (measured on the tiny UNet with prompt feeds: every flip within 0.021 of the threshold fp16, 4e-8 fp32);
# - flip_noise_pred: the noise_pred tolerance for a feed where explained gate flips occurred: one flipped
#   (position, token) of the tiny UNet moves noise_pred by ~1e-4 max abs / ~1e-5 rel L2, a real bug by > 1e-1;
#   in fp16, where a row has every token closed, an arg-max near-tie can keep another token and the change
#   cascades through later layers (tiny UNet, every gate closed: rel L2 up to 5e-2), hence 1e-1 there.
TOLERANCES = {
    ("fp32", "fp32"): {"noise_pred": (1e-4, 1e-5), "gate_agreement": 0.999, "gate_logit_margin": 1e-3,
                       "flip_noise_pred": (1e-2, 1e-3)},
    ("fp32", "fp16"): {"noise_pred": (5e-2, 1e-2), "gate_agreement": 0.99, "gate_logit_margin": 0.1,
                       "flip_noise_pred": (5e-1, 1e-1)},
    ("fp16", "fp16"): {"noise_pred": (5e-2, 1e-2), "gate_agreement": 0.99, "gate_logit_margin": 0.1,
                       "flip_noise_pred": (5e-1, 1e-1)},
}


def time_ids(height: int, width: int, batch: int = 1, crop: tuple[int, int] = (0, 0),
             original: tuple[int, int] | None = None, target: tuple[int, int] | None = None) -> torch.Tensor:
    """SDXL's micro-conditioning ``time_ids`` [batch, 6] (fp32): original size, crop top-left, target size, in
    pixels, as diffusers' SDXL pipeline builds them (original and target default to the image size)."""
    original = original or (height, width)
    target = target or (height, width)
    row = [float(v) for v in (*original, *crop, *target)]
    return torch.tensor([row] * batch, dtype=torch.float32)


@dataclass(frozen=True)
class Range:
    """min / opt / max of one dynamic dimension (in latent units for height and width)."""

    min: int
    opt: int
    max: int

    def __post_init__(self):
        if not (0 < self.min <= self.opt <= self.max):
            raise BadInputError(f"a shape range needs 0 < min <= opt <= max; got {self.min}:{self.opt}:{self.max}")

    @classmethod
    def parse(cls, text: str, what: str) -> Range:
        """``"MIN:OPT:MAX"`` or a single value (static)."""
        parts = str(text).split(":")
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise BadInputError(f"{what} must be MIN:OPT:MAX or one integer; got {text!r}") from None
        if len(values) == 1:
            values *= 3
        if len(values) != 3:
            raise BadInputError(f"{what} must be MIN:OPT:MAX or one integer; got {text!r}")
        try:
            return cls(*values)
        except BadInputError as exc:
            raise BadInputError(f"{what}: {exc}") from None

    def contains(self, value: int) -> bool:
        return self.min <= value <= self.max

    def within(self, other: Range) -> bool:
        return other.min <= self.min and self.max <= other.max

    def __str__(self) -> str:
        return f"{self.min}:{self.opt}:{self.max}"


@dataclass(frozen=True)
class UNetIOSpec:
    """Shapes of the SDXL UNet graph. ``height``/``width`` are latent sizes (pixels / vae_scale)."""

    in_channels: int
    out_channels: int
    cross_attention_dim: int
    text_embeds_dim: int
    time_ids_dim: int = 6
    tokens: int = 77
    dtype: str = "fp32"
    batch: Range = Range(1, 2, 4)
    height: Range = Range(16, 32, 64)
    width: Range = Range(16, 32, 64)
    latent_multiple: int = 4
    vae_scale: int = 8
    gate_sites: tuple[str, ...] = field(default_factory=tuple)
    gate_downsample: dict = field(default_factory=dict)
    block_downsample: dict = field(default_factory=dict)
    component = "unet"  # a class attribute, not a field: which pipeline graph this spec describes

    # --------------------------------------------------------------- construction
    @classmethod
    def for_unet(cls, unet: nn.Module, dtype: str = "fp32", vae_scale: int = 8, **ranges) -> UNetIOSpec:
        """Read every dimension from the UNet's config (works for the real SDXL config and tiny ones)."""
        cfg = unet.config
        text_embeds_dim = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
        multiple = 2 ** (len(cfg.block_out_channels) - 1)
        if dtype not in DTYPES:
            raise BadInputError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
        return cls(
            in_channels=cfg.in_channels,
            out_channels=cfg.out_channels,
            cross_attention_dim=cfg.cross_attention_dim,
            text_embeds_dim=text_embeds_dim,
            dtype=dtype,
            latent_multiple=multiple,
            vae_scale=vae_scale,
            block_downsample=block_downsample(unet),
            **ranges,
        )

    def with_gate_outputs(self, sites: list[str]) -> UNetIOSpec:
        """The spec with one ``gate:<site>`` output per site, each on its block's attention grid."""
        down = {}
        for site in sites:
            block = next((b for b in self.block_downsample if site.startswith(b + ".")), None)
            if block is None:
                raise BadInputError(f"gate site {site!r} is not inside a block of this UNet "
                                    f"({', '.join(self.block_downsample) or 'no blocks recorded'}); build the spec "
                                    "with UNetIOSpec.for_unet(unet) from the gated UNet")
            down[site] = self.block_downsample[block]
        return dataclasses.replace(self, gate_sites=tuple(sites), gate_downsample=down)

    def replace(self, **changes) -> UNetIOSpec:
        return dataclasses.replace(self, **changes)

    # --------------------------------------------------------------- names and shapes
    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def input_names(self) -> tuple[str, ...]:
        return INPUT_NAMES

    @property
    def output_names(self) -> list[str]:
        return [OUTPUT_NAME] + [GATE_PREFIX + s for s in self.gate_sites]

    def output_dtypes(self) -> dict[str, torch.dtype]:
        return dict.fromkeys(self.output_names, self.torch_dtype)

    def max_dims(self) -> tuple[int, int, int]:
        """(batch, latent height, latent width) of the largest feed the spec accepts (buffer allocation)."""
        return self.batch.max, self.height.max, self.width.max

    def input_dtypes(self) -> dict[str, torch.dtype]:
        dt = self.torch_dtype
        return {"sample": dt, "timestep": torch.float32, "encoder_hidden_states": dt, "text_embeds": dt, "time_ids": dt}

    def shapes(self, batch: int, height: int, width: int) -> dict[str, tuple[int, ...]]:
        """Concrete input and output shapes for one (batch, latent height, latent width)."""
        shapes = {
            "sample": (batch, self.in_channels, height, width),
            "timestep": (batch,),
            "encoder_hidden_states": (batch, self.tokens, self.cross_attention_dim),
            "text_embeds": (batch, self.text_embeds_dim),
            "time_ids": (batch, self.time_ids_dim),
            OUTPUT_NAME: (batch, self.out_channels, height, width),
        }
        for site in self.gate_sites:
            f = self.gate_downsample[site]
            shapes[GATE_PREFIX + site] = (batch, (height // f) * (width // f), self.tokens)
        return shapes

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = {
            "sample": {0: "batch", 2: "height", 3: "width"},
            "timestep": {0: "batch"},
            "encoder_hidden_states": {0: "batch"},
            "text_embeds": {0: "batch"},
            "time_ids": {0: "batch"},
            OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"},
        }
        for site in self.gate_sites:
            axes[GATE_PREFIX + site] = {0: "batch", 1: f"positions_{self.gate_downsample[site]}"}
        return axes

    def profile(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        """Input name -> (min, opt, max) shapes, for TensorRT optimisation profiles."""
        lo = self.shapes(self.batch.min, self.height.min, self.width.min)
        mid = self.shapes(self.batch.opt, self.height.opt, self.width.opt)
        hi = self.shapes(self.batch.max, self.height.max, self.width.max)
        return {name: (lo[name], mid[name], hi[name]) for name in INPUT_NAMES}

    def check(self, batch: int, height: int, width: int, what: str = "input") -> None:
        """Raise a clear error when a shape is outside the exported range or off the latent grid."""
        for label, value, rng in (("batch", batch, self.batch), ("latent height", height, self.height),
                                  ("latent width", width, self.width)):
            if not rng.contains(value):
                px = f" ({value * self.vae_scale} px)" if label != "batch" else ""
                raise BadInputError(
                    f"{what}: {label} {value}{px} is outside the exported range {rng}; re-export with a wider "
                    "range (--batch/--height/--width) or use a size inside it"
                )
        for label, value in (("latent height", height), ("latent width", width)):
            if value % self.latent_multiple:
                raise BadInputError(
                    f"{what}: {label} {value} must be a multiple of {self.latent_multiple} "
                    f"({self.latent_multiple * self.vae_scale} px) for this UNet"
                )

    def feed_shape(self, feed: dict[str, torch.Tensor]) -> tuple[int, int, int]:
        missing = [n for n in INPUT_NAMES if n not in feed]
        if missing:
            raise BadInputError(f"UNet feed lacks input(s) {', '.join(missing)}; expected {', '.join(INPUT_NAMES)}")
        b, _, h, w = feed["sample"].shape
        return int(b), int(h), int(w)

    def dummy_inputs(self, batch: int, height: int, width: int, seed: int = 0, device="cpu") -> dict[str, torch.Tensor]:
        """Fresh random inputs (never zeros) with realistic scales."""
        gen = torch.Generator().manual_seed(seed)
        s = self.shapes(batch, height, width)
        dt = self.input_dtypes()
        feed = {
            "sample": torch.randn(s["sample"], generator=gen),
            "timestep": torch.randint(1, 1000, s["timestep"], generator=gen).float(),
            "encoder_hidden_states": torch.randn(s["encoder_hidden_states"], generator=gen),
            "text_embeds": torch.randn(s["text_embeds"], generator=gen),
            "time_ids": time_ids(height * self.vae_scale, width * self.vae_scale, batch),
        }
        return {k: v.to(device=device, dtype=dt[k]) for k, v in feed.items()}

    # --------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        for key in ("batch", "height", "width"):
            data[key] = [getattr(self, key).min, getattr(self, key).opt, getattr(self, key).max]
        data["gate_sites"] = list(self.gate_sites)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> UNetIOSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        ignored = {"input_names", "output_names", "dynamic_axes", "profile", "component"}
        unknown = sorted(set(data) - known - ignored)
        if data.get("component", "unet") != "unet":
            raise BadInputError(f"this IO spec describes the {data['component']}, not a UNet")
        if unknown:
            raise BadInputError(f"IO spec has unknown key(s) {', '.join(unknown)}")
        values = {k: v for k, v in data.items() if k in known}
        for key in ("batch", "height", "width"):
            if key in values:
                values[key] = Range(*values[key])
        values["gate_sites"] = tuple(values.get("gate_sites", ()))
        return cls(**values)

    def save(self, path: str | Path) -> None:
        payload = self.to_dict()
        payload["component"] = self.component
        payload["input_names"] = list(INPUT_NAMES)
        payload["output_names"] = self.output_names
        payload["dynamic_axes"] = {k: {str(a): n for a, n in v.items()} for k, v in self.dynamic_axes().items()}
        payload["profile"] = {k: [list(s) for s in v] for k, v in self.profile().items()}
        write_json_atomic(path, payload)

    @classmethod
    def load(cls, path: str | Path) -> UNetIOSpec:
        path = Path(path)
        if not path.is_file():
            raise BadInputError(f"IO spec {path} does not exist; point at a folder written by `maskattn-trt export`")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError) as exc:
            raise BadInputError(f"IO spec {path} is not valid ({exc}); re-run `maskattn-trt export`") from exc


def block_downsample(unet: nn.Module) -> dict[str, int]:
    """Latent -> attention-grid downsampling of every down / mid / up block, read from the modules themselves
    (a block's grid is halved after each block that has downsamplers and doubled after each with upsamplers)."""
    factors, factor = {}, 1
    for i, block in enumerate(getattr(unet, "down_blocks", ())):
        factors[f"down_blocks.{i}"] = factor
        if getattr(block, "downsamplers", None):
            factor *= 2
    if getattr(unet, "mid_block", None) is not None:
        factors["mid_block"] = factor
    for i, block in enumerate(getattr(unet, "up_blocks", ())):
        factors[f"up_blocks.{i}"] = factor
        if getattr(block, "upsamplers", None):
            factor //= 2
    return factors


# ------------------------------------------------------------------ optimisation profiles (pixels -> latents)
@dataclass(frozen=True)
class EngineProfile:
    """min / opt / max of batch and LATENT height / width for one TensorRT optimisation profile."""

    batch: Range
    height: Range
    width: Range

    @property
    def is_static(self) -> bool:
        return all(r.min == r.max for r in (self.batch, self.height, self.width))

    def spec(self, io_spec: UNetIOSpec) -> UNetIOSpec:
        """The IO spec restricted to this profile (what the engine accepts)."""
        return io_spec.replace(batch=self.batch, height=self.height, width=self.width)

    def shapes(self, io_spec: UNetIOSpec) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        """Input name -> (min, opt, max) shapes."""
        return self.spec(io_spec).profile()

    def to_dict(self, io_spec: UNetIOSpec) -> dict:
        scale = io_spec.vae_scale
        return {
            "batch": [self.batch.min, self.batch.opt, self.batch.max],
            "latent_height": [self.height.min, self.height.opt, self.height.max],
            "latent_width": [self.width.min, self.width.opt, self.width.max],
            "pixel_height": [v * scale for v in (self.height.min, self.height.opt, self.height.max)],
            "pixel_width": [v * scale for v in (self.width.min, self.width.opt, self.width.max)],
            "static": self.is_static,
            "inputs": {name: [list(s) for s in shapes] for name, shapes in self.shapes(io_spec).items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> EngineProfile:
        return cls(Range(*data["batch"]), Range(*data["latent_height"]), Range(*data["latent_width"]))

    def describe(self, io_spec: UNetIOSpec) -> str:
        s = io_spec.vae_scale
        return (f"batch {self.batch}, height {self.height.min * s}:{self.height.opt * s}:{self.height.max * s} px, "
                f"width {self.width.min * s}:{self.width.opt * s}:{self.width.max * s} px")


def pixels_to_latent(text: str, what: str, io_spec: UNetIOSpec, exported: Range) -> Range:
    pixels = Range.parse(text, what)
    grid = io_spec.latent_multiple * io_spec.vae_scale
    for value in (pixels.min, pixels.opt, pixels.max):
        if value % PIXEL_MULTIPLE:
            raise BadInputError(f"{what} {value} px is not a multiple of {PIXEL_MULTIPLE}; use e.g. "
                                f"{value - value % PIXEL_MULTIPLE} or {value - value % PIXEL_MULTIPLE + PIXEL_MULTIPLE}")
        if value % grid:
            raise BadInputError(f"{what} {value} px is off this UNet's latent grid: it must be a multiple of {grid} px "
                                f"(latent multiple {io_spec.latent_multiple} x VAE scale {io_spec.vae_scale})")
    latent = Range(pixels.min // io_spec.vae_scale, pixels.opt // io_spec.vae_scale, pixels.max // io_spec.vae_scale)
    if not latent.within(exported):
        s = io_spec.vae_scale
        raise BadInputError(
            f"{what} {pixels} px is outside the range the graph was exported for "
            f"({exported.min * s}:{exported.max * s} px); narrow it or re-export with a wider --height/--width"
        )
    return latent


def resolve_profile(io_spec: UNetIOSpec, batch: str | None = None, height: str | None = None,
                    width: str | None = None, static: bool = False) -> EngineProfile:
    """The engine profile: the export's ranges, overridden by ``MIN:OPT:MAX`` batch / pixel ranges.

    ``static`` pins every dimension to its opt value (one shape; enables CUDA-graph capture in the runner).
    """
    b = io_spec.batch
    if batch is not None:
        b = Range.parse(batch, "--batch")
        if not b.within(io_spec.batch):
            raise BadInputError(f"--batch {b} is outside the exported batch range {io_spec.batch}; narrow it or "
                                "re-export with a wider --batch")
    h = io_spec.height if height is None else pixels_to_latent(height, "--height", io_spec, io_spec.height)
    w = io_spec.width if width is None else pixels_to_latent(width, "--width", io_spec, io_spec.width)
    if static:
        b, h, w = (Range(r.opt, r.opt, r.opt) for r in (b, h, w))
    for label, rng in (("latent height", h), ("latent width", w)):
        for value in (rng.min, rng.opt, rng.max):
            if value % io_spec.latent_multiple:
                raise BadInputError(f"the exported {label} range {rng} has {value}, not a multiple of "
                                    f"{io_spec.latent_multiple}; pass --height/--width in pixels on the grid")
    return EngineProfile(b, h, w)
