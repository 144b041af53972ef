"""Optimisation profiles: from the export's IO spec, or from pixel ranges users think in.

SDXL users say "768 to 1024 px"; the graph sees latents (pixels / vae_scale). Pixel ranges are validated
(multiples of 8, on the UNet's latent grid, inside the range the graph was exported for) and converted
here, once; the builder and the engine runner read shapes from the resulting :class:`EngineProfile`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BadInputError
from ..spec import INPUT_NAMES, Range, UNetIOSpec

PIXEL_MULTIPLE = 8


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


def _pixels_to_latent(text: str, what: str, io_spec: UNetIOSpec, exported: Range) -> Range:
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
    h = io_spec.height if height is None else _pixels_to_latent(height, "--height", io_spec, io_spec.height)
    w = io_spec.width if width is None else _pixels_to_latent(width, "--width", io_spec, io_spec.width)
    if static:
        b, h, w = (Range(r.opt, r.opt, r.opt) for r in (b, h, w))
    for label, rng in (("latent height", h), ("latent width", w)):
        for value in (rng.min, rng.opt, rng.max):
            if value % io_spec.latent_multiple:
                raise BadInputError(f"the exported {label} range {rng} has {value}, not a multiple of "
                                    f"{io_spec.latent_multiple}; pass --height/--width in pixels on the grid")
    return EngineProfile(b, h, w)


def check_io_names(network, io_spec: UNetIOSpec) -> None:
    """The parsed network's inputs and outputs must be the ones the IO spec names."""
    inputs = [network.get_input(i).name for i in range(network.num_inputs)]
    outputs = [network.get_output(i).name for i in range(network.num_outputs)]
    if sorted(inputs) != sorted(INPUT_NAMES) or sorted(outputs) != sorted(io_spec.output_names):
        raise BadInputError(
            f"the ONNX graph's inputs {inputs} / outputs {outputs} do not match its IO spec "
            f"({list(INPUT_NAMES)} / {io_spec.output_names}); the folder mixes files of two exports — re-export"
        )
