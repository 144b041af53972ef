"""IO specs of the pipeline's other exported graphs (both CLIP text encoders, the VAE decoder), and the one
place that maps a component name to its spec class.

Each spec follows the UNet's :class:`~maskattn_trt.spec.UNetIOSpec` (optimum's declarative ``OnnxConfig``
idea): names, dtypes, dynamic axes, min/opt/max profile, shapes for concrete dims, dummy inputs, persistence.
Runners, the exporter and the engine builder only use that shared surface (``input_names``, ``output_names``,
``input_dtypes()``, ``output_dtypes()``, ``feed_shape(feed)``, ``check(*dims)``, ``shapes(*dims)``,
``max_dims()``, ``profile()``, ``dynamic_axes()``), so one runner class serves every component.

- ``text_encoder`` (CLIPTextModel): ``input_ids`` int64 [B, 77] -> ``hidden_states`` [B, 77, H], the
  penultimate layer's hidden states (what SDXL conditions on).
- ``text_encoder_2`` (CLIPTextModelWithProjection): ``input_ids`` -> ``text_embeds`` [B, P] (the pooled
  projection) and ``hidden_states`` [B, 77, H2] (penultimate).
- ``vae_decoder``: ``latent`` [B, C, h, w] as the sampler leaves it (before VAE scaling) -> ``image``
  [B, 3, h * s, w * s] in 0..1 (unclamped: a non-finite decode stays visible). The latent scaling (and
  ``latents_mean`` / ``latents_std`` where the VAE has them) and ``x / 2 + 0.5`` are inside the graph.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import BadInputError
from .spec import DTYPE_TABLE, DTYPES, Range, UNetIOSpec, resolve_profile
from .utils.io import write_json_atomic

COMPONENTS = ("unet", "text_encoder", "text_encoder_2", "vae_decoder")
TEXT_COMPONENTS = ("text_encoder", "text_encoder_2")
INPUT_IDS = "input_ids"
HIDDEN_STATES = "hidden_states"
TEXT_EMBEDS = "text_embeds"
LATENT = "latent"
IMAGE = "image"

# Explicit parity tolerances per component and precision pair: output -> (max abs, relative L2).
# Text encoders: the bar is rel L2 <= 1e-5 (fp32); VAE: max abs <= 1e-3 on the 0..1 image.
COMPONENT_TOLERANCES = {
    ("text_encoder", "fp32", "fp32"): {HIDDEN_STATES: (1e-4, 1e-5)},
    ("text_encoder_2", "fp32", "fp32"): {HIDDEN_STATES: (1e-4, 1e-5), TEXT_EMBEDS: (1e-4, 1e-5)},
    ("vae_decoder", "fp32", "fp32"): {IMAGE: (1e-3, 1e-4)},
    ("text_encoder", "fp32", "fp16"): {HIDDEN_STATES: (5e-2, 1e-2)},
    ("text_encoder_2", "fp32", "fp16"): {HIDDEN_STATES: (5e-2, 1e-2), TEXT_EMBEDS: (5e-2, 1e-2)},
    ("vae_decoder", "fp32", "fp16"): {IMAGE: (2e-2, 1e-2)},
}


def _check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise BadInputError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")


def _ranges_to_lists(data: dict, keys) -> dict:
    for key in keys:
        rng = data[key]
        data[key] = [rng["min"], rng["opt"], rng["max"]] if isinstance(rng, dict) else list(rng)
    return data


class _SpecIO:
    """Persistence and the profile, shared by the component specs (each says its own ``DIMS``)."""

    DIMS: tuple[str, ...] = ("batch",)
    component: str

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def max_dims(self) -> tuple[int, ...]:
        return tuple(getattr(self, key).max for key in self.DIMS)

    def profile(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        lo = self.shapes(*(getattr(self, k).min for k in self.DIMS))
        mid = self.shapes(*(getattr(self, k).opt for k in self.DIMS))
        hi = self.shapes(*(getattr(self, k).max for k in self.DIMS))
        return {name: (lo[name], mid[name], hi[name]) for name in self.input_names}

    def to_dict(self) -> dict:
        data = _ranges_to_lists(dataclasses.asdict(self), self.DIMS)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"input_names", "output_names", "dynamic_axes", "profile"})
        if unknown:
            raise BadInputError(f"{cls.__name__} has unknown key(s) {', '.join(unknown)}")
        values = {k: v for k, v in data.items() if k in known}
        for key in cls.DIMS:
            if key in values:
                values[key] = Range(*values[key])
        for key, value in values.items():
            if isinstance(value, list):
                values[key] = tuple(value)
        return cls(**values)

    def save(self, path: str | Path) -> None:
        payload = self.to_dict()
        payload["input_names"] = list(self.input_names)
        payload["output_names"] = list(self.output_names)
        payload["dynamic_axes"] = {k: {str(a): n for a, n in v.items()} for k, v in self.dynamic_axes().items()}
        payload["profile"] = {k: [list(s) for s in v] for k, v in self.profile().items()}
        write_json_atomic(path, payload)

    def _check_range(self, label: str, value: int, rng: Range, what: str, unit: str = "") -> None:
        if not rng.contains(value):
            raise BadInputError(f"{what}: {label} {value}{unit} is outside the exported range {rng}; re-export "
                                f"the {self.component} with a wider range or use a size inside it")


@dataclass(frozen=True)
class TextEncoderIOSpec(_SpecIO):
    """A CLIP text encoder graph: token ids -> penultimate hidden states (+ pooled projection for encoder 2)."""

    component: str
    hidden_size: int
    vocab_size: int
    projection_dim: int | None = None  # text_encoder_2's pooled projection width
    tokens: int = 77
    dtype: str = "fp32"
    batch: Range = Range(1, 2, 4)

    def __post_init__(self):
        if self.component not in TEXT_COMPONENTS:
            raise BadInputError(f"a text encoder spec is for {' or '.join(TEXT_COMPONENTS)}; got {self.component!r}")
        _check_dtype(self.dtype)

    @classmethod
    def for_encoder(cls, component: str, encoder, tokens: int = 77, dtype: str = "fp32", **ranges):
        cfg = encoder.config
        has_projection = hasattr(encoder, "text_projection")
        if component == "text_encoder_2" and not has_projection:
            raise BadInputError("text_encoder_2 must be a CLIPTextModelWithProjection (SDXL's pooled embedding "
                                "comes from its projection)")
        return cls(component=component, hidden_size=cfg.hidden_size, vocab_size=cfg.vocab_size,
                   projection_dim=cfg.projection_dim if component == "text_encoder_2" else None,
                   tokens=tokens, dtype=dtype, **ranges)

    @property
    def input_names(self) -> tuple[str, ...]:
        return (INPUT_IDS,)

    @property
    def output_names(self) -> list[str]:
        return [TEXT_EMBEDS, HIDDEN_STATES] if self.projection_dim else [HIDDEN_STATES]

    def input_dtypes(self) -> dict[str, torch.dtype]:
        return {INPUT_IDS: DTYPE_TABLE["int64"][0]}

    def output_dtypes(self) -> dict[str, torch.dtype]:
        return dict.fromkeys(self.output_names, self.torch_dtype)

    def shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        shapes = {INPUT_IDS: (batch, self.tokens), HIDDEN_STATES: (batch, self.tokens, self.hidden_size)}
        if self.projection_dim:
            shapes[TEXT_EMBEDS] = (batch, self.projection_dim)
        return shapes

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {name: {0: "batch"} for name in (*self.input_names, *self.output_names)}

    def feed_shape(self, feed: dict[str, torch.Tensor]) -> tuple[int]:
        if INPUT_IDS not in feed:
            raise BadInputError(f"{self.component} feed lacks {INPUT_IDS!r}; expected token ids [B, {self.tokens}]")
        ids = feed[INPUT_IDS]
        if ids.ndim != 2 or ids.shape[1] != self.tokens:
            raise BadInputError(f"{self.component} input_ids must be [batch, {self.tokens}]; got {tuple(ids.shape)}")
        return (int(ids.shape[0]),)

    def check(self, batch: int, what: str = "input") -> None:
        self._check_range("batch", batch, self.batch, what)

    def dummy_inputs(self, batch: int, seed: int = 0, device="cpu") -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, self.vocab_size, (batch, self.tokens), generator=gen)
        return {INPUT_IDS: ids.to(device)}


@dataclass(frozen=True)
class VaeDecoderIOSpec(_SpecIO):
    """The VAE decoder graph: sampler latents -> image in 0..1. ``height``/``width`` are LATENT sizes."""

    latent_channels: int
    vae_scale: int
    scaling_factor: float
    latents_mean: tuple[float, ...] | None = None
    latents_std: tuple[float, ...] | None = None
    image_channels: int = 3
    dtype: str = "fp32"
    batch: Range = Range(1, 1, 4)
    height: Range = Range(16, 32, 64)
    width: Range = Range(16, 32, 64)
    latent_multiple: int = 1
    component: str = "vae_decoder"
    DIMS = ("batch", "height", "width")

    def __post_init__(self):
        if self.component != "vae_decoder":
            raise BadInputError(f"a VAE decoder spec has component 'vae_decoder'; got {self.component!r}")
        _check_dtype(self.dtype)

    @classmethod
    def for_vae(cls, vae, dtype: str = "fp32", **ranges) -> VaeDecoderIOSpec:
        cfg = vae.config
        mean, std = getattr(cfg, "latents_mean", None), getattr(cfg, "latents_std", None)
        return cls(latent_channels=cfg.latent_channels, vae_scale=2 ** (len(cfg.block_out_channels) - 1),
                   scaling_factor=float(cfg.scaling_factor),
                   latents_mean=tuple(map(float, mean)) if mean is not None and std is not None else None,
                   latents_std=tuple(map(float, std)) if mean is not None and std is not None else None,
                   image_channels=cfg.out_channels, dtype=dtype, **ranges)

    @property
    def input_names(self) -> tuple[str, ...]:
        return (LATENT,)

    @property
    def output_names(self) -> list[str]:
        return [IMAGE]

    def input_dtypes(self) -> dict[str, torch.dtype]:
        return {LATENT: self.torch_dtype}

    def output_dtypes(self) -> dict[str, torch.dtype]:
        return {IMAGE: self.torch_dtype}

    def shapes(self, batch: int, height: int, width: int) -> dict[str, tuple[int, ...]]:
        s = self.vae_scale
        return {LATENT: (batch, self.latent_channels, height, width),
                IMAGE: (batch, self.image_channels, height * s, width * s)}

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {LATENT: {0: "batch", 2: "height", 3: "width"},
                IMAGE: {0: "batch", 2: "pixel_height", 3: "pixel_width"}}

    def feed_shape(self, feed: dict[str, torch.Tensor]) -> tuple[int, int, int]:
        if LATENT not in feed:
            raise BadInputError(f"VAE decoder feed lacks {LATENT!r}; expected latents [B, {self.latent_channels}, h, w]")
        latent = feed[LATENT]
        if latent.ndim != 4 or latent.shape[1] != self.latent_channels:
            raise BadInputError(f"VAE decoder latent must be [batch, {self.latent_channels}, h, w]; got "
                                f"{tuple(latent.shape)}")
        b, _, h, w = latent.shape
        return int(b), int(h), int(w)

    def check(self, batch: int, height: int, width: int, what: str = "input") -> None:
        self._check_range("batch", batch, self.batch, what)
        for label, value, rng in (("latent height", height, self.height), ("latent width", width, self.width)):
            self._check_range(label, value, rng, what, f" ({value * self.vae_scale} px)")

    def dummy_inputs(self, batch: int, height: int, width: int, seed: int = 0, device="cpu") -> dict:
        """Unit-variance latents: the scale of the sampler's final latents (SDXL's latent space is scaled so)."""
        gen = torch.Generator().manual_seed(seed)
        latent = torch.randn((batch, self.latent_channels, height, width), generator=gen)
        return {LATENT: latent.to(device=device, dtype=self.torch_dtype)}


SPEC_CLASSES = {"unet": UNetIOSpec, "text_encoder": TextEncoderIOSpec, "text_encoder_2": TextEncoderIOSpec,
                "vae_decoder": VaeDecoderIOSpec}
IOSpec = UNetIOSpec | TextEncoderIOSpec | VaeDecoderIOSpec


def component_of(spec) -> str:
    return getattr(spec, "component", "unet")


def check_component(name: str) -> str:
    if name not in COMPONENTS:
        raise BadInputError(f"unknown component {name!r}; choose one of {', '.join(COMPONENTS)}")
    return name


def io_spec_from_dict(data: dict) -> IOSpec:
    """A saved IO spec -> its class (an io_spec.json without ``component`` is a UNet's, as before components)."""
    return SPEC_CLASSES[check_component(data.get("component", "unet"))].from_dict(data)


def load_io_spec(path: str | Path) -> IOSpec:
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"IO spec {path} does not exist; point at a folder written by `maskattn-trt export`")
    try:
        return io_spec_from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise BadInputError(f"IO spec {path} is not valid ({exc}); re-run `maskattn-trt export`") from exc


@dataclass(frozen=True)
class BatchProfile:
    """The engine profile of a graph whose only dynamic dimension is the batch (the text encoders)."""

    batch: Range

    @property
    def is_static(self) -> bool:
        return self.batch.min == self.batch.max

    def spec(self, io_spec):
        return io_spec.replace(batch=self.batch)

    def shapes(self, io_spec):
        return self.spec(io_spec).profile()

    def to_dict(self, io_spec) -> dict:
        return {"batch": [self.batch.min, self.batch.opt, self.batch.max], "static": self.is_static,
                "inputs": {name: [list(s) for s in shapes] for name, shapes in self.shapes(io_spec).items()}}

    def describe(self, io_spec) -> str:
        return f"batch {self.batch}"


def resolve_engine_profile(io_spec: IOSpec, batch: str | None = None, height: str | None = None,
                           width: str | None = None, static: bool = False):
    """The engine profile of any component: the export's ranges, narrowed by ``--batch``/``--height``/``--width``
    (pixels). A text encoder has no height or width; those options then raise a clear error."""
    if hasattr(io_spec, "height"):
        return resolve_profile(io_spec, batch, height, width, static)
    if height is not None or width is not None:
        raise BadInputError(f"--height/--width do not apply to the {component_of(io_spec)} (its only dynamic "
                            "dimension is the batch); drop them for this component")
    b = io_spec.batch
    if batch is not None:
        b = Range.parse(batch, "--batch")
        if not b.within(io_spec.batch):
            raise BadInputError(f"--batch {b} is outside the exported batch range {io_spec.batch}; narrow it or "
                                "re-export with a wider --batch")
    if static:
        b = Range(b.opt, b.opt, b.opt)
    return BatchProfile(b)
