"""One IO spec for the exported UNet graph: names, dtypes, dynamic axes, profiles, dummy inputs, tolerances.

Exporter, runners, engine builder and parity harness all read shapes from here (the pattern of optimum's
declarative ``OnnxConfig``), so shape logic is written once. The graph has the inputs and outputs of a
stock SDXL UNet; with ``gate_outputs`` it also returns each site's hard gate ``gate:<site>`` [B, N, T].
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .errors import BadInputError

INPUT_NAMES = ("sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids")
OUTPUT_NAME = "noise_pred"
GATE_PREFIX = "gate:"
DTYPES = {"fp32": torch.float32, "fp16": torch.float16}

# Explicit parity tolerances per output kind and precision pair: (max abs, relative L2).
TOLERANCES = {
    ("fp32", "fp32"): {"noise_pred": (1e-4, 1e-5), "gate_agreement": 0.999},
    ("fp32", "fp16"): {"noise_pred": (5e-2, 1e-2), "gate_agreement": 0.99},
    ("fp16", "fp16"): {"noise_pred": (5e-2, 1e-2), "gate_agreement": 0.99},
}


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
            **ranges,
        )

    def with_gate_outputs(self, sites: list[str]) -> UNetIOSpec:
        down = {s: _site_downsample(s) for s in sites}
        return dataclasses.replace(self, gate_sites=tuple(sites), gate_downsample=down)

    def replace(self, **changes) -> UNetIOSpec:
        return dataclasses.replace(self, **changes)

    # --------------------------------------------------------------- names and shapes
    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def output_names(self) -> list[str]:
        return [OUTPUT_NAME] + [GATE_PREFIX + s for s in self.gate_sites]

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
            "time_ids": torch.tensor([[height * self.vae_scale, width * self.vae_scale, 0, 0,
                                       height * self.vae_scale, width * self.vae_scale]] * batch, dtype=torch.float32),
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
        unknown = sorted(set(data) - known - {"input_names", "output_names", "dynamic_axes", "profile"})
        if unknown:
            raise BadInputError(f"IO spec has unknown key(s) {', '.join(unknown)}")
        values = {k: v for k, v in data.items() if k in known}
        for key in ("batch", "height", "width"):
            if key in values:
                values[key] = Range(*values[key])
        values["gate_sites"] = tuple(values.get("gate_sites", ()))
        return cls(**values)

    def save(self, path: str | Path) -> None:
        from .utils.io import write_json_atomic

        payload = self.to_dict()
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


def _site_downsample(site: str) -> int:
    """Latent -> attention-grid downsampling at a site (SDXL: down_blocks.i / up_blocks.(2-i) / mid_block)."""
    parts = site.split(".")
    if parts[0] == "down_blocks":
        return 2 ** int(parts[1])
    if parts[0] == "up_blocks":
        return 2 ** (2 - int(parts[1]))
    return 4


class UNetGraph(nn.Module):
    """The UNet with the graph's flat signature: the module both the exporter and the eager runner call."""

    def __init__(self, unet: nn.Module, spec: UNetIOSpec):
        super().__init__()
        self.unet = unet
        self.spec = spec

    def forward(self, sample, timestep, encoder_hidden_states, text_embeds, time_ids):
        from .gates import gate_processors

        processors = gate_processors(self.unet) if self.spec.gate_sites else {}
        for site in self.spec.gate_sites:
            processors[site].record = True
        out = self.unet(
            sample,
            timestep,
            encoder_hidden_states=encoder_hidden_states,
            added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids},
            return_dict=False,
        )[0]
        if not self.spec.gate_sites:
            return out
        gates = []
        for site in self.spec.gate_sites:
            gates.append(processors[site].last_gate.to(out.dtype))
            processors[site].record = False
            processors[site].last_gate = None
        return (out, *gates)
