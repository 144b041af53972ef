"""The SDXL denoising loop, written once against the Runner contract (eager, ONNX Runtime, TensorRT).

Per step: the scheduler scales the latents, they are copied into both halves of a preallocated UNet input
(classifier-free guidance batches unconditional and conditional into ONE runner call), the timestep buffer is
filled in place, and the guided noise is formed in a reused buffer before ``scheduler.step``. Nothing in the
loop reads a device value on the host: diffusers schedulers get ``set_begin_index(0)`` so they never search
their timestep table, and timings synchronise once per batch. Text encodings are computed once per prompt.

The text encoders and the VAE decoder are runners too (``components``: eager from the pipeline by default, or
ONNX Runtime / TensorRT runners of their exported graphs), so a whole generation can run outside PyTorch
(the scheduler aside). The eager VAE decodes in fp32.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..component_spec import IMAGE, LATENT, VaeDecoderIOSpec
from ..errors import BadInputError, NonFiniteError
from ..runners import EagerRunner, Runner
from ..spec import GATE_PREFIX, INPUT_NAMES, OUTPUT_NAME, Range, time_ids
from .schedulers import check_scheduler_name, make_scheduler, step_kwargs
from .text import PromptEncoder, TextCondition


@dataclass(frozen=True)
class SampleSettings:
    """How to sample: steps, guidance, scheduler, image size in PIXELS, DDIM eta."""

    steps: int = 30
    guidance: float = 5.0
    scheduler: str = "euler"
    height: int = 1024
    width: int = 1024
    eta: float = 0.0

    def __post_init__(self):
        check_scheduler_name(self.scheduler)
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise BadInputError(f"steps must be a positive integer; got {self.steps!r}")
        if not (isinstance(self.guidance, (int, float)) and 0 <= self.guidance < math.inf):
            raise BadInputError(f"guidance must be a finite number >= 0 (1 or less disables classifier-free "
                                f"guidance); got {self.guidance!r}")
        if not (isinstance(self.eta, (int, float)) and 0 <= self.eta <= 1):
            raise BadInputError(f"eta must lie in [0, 1]; got {self.eta!r}")
        for label, value in (("height", self.height), ("width", self.width)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value % 8:
                raise BadInputError(f"{label} must be a positive multiple of 8 pixels; got {value!r}")

    @property
    def cfg(self) -> bool:
        return self.guidance > 1.0


@dataclass
class DenoiseResult:
    latents: torch.Tensor  # [B, C, h, w] fp32, final (before VAE scaling)
    gates: dict[str, torch.Tensor] | None  # site -> mean hard gate over the recorded steps [B, N, T] (conditional)
    seconds: float
    steps: int


_ANY = Range(1, 1, 1 << 16)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Sampler:
    """SDXL sampling over any :class:`~maskattn_trt.runners.Runner`; the pipeline provides tokenizers and the
    scheduler config, and the text encoders and VAE of every component without a runner in ``components``
    (its UNet is never called here).

    ``components``: ``text_encoder`` / ``text_encoder_2`` / ``vae_decoder`` -> a runner of that component; the
    caller activates them (``Backend.activate``) before encoding or decoding.
    """

    def __init__(self, pipe, runner: Runner, settings: SampleSettings, components: dict[str, Runner] | None = None):
        self.pipe = pipe
        self.runner = runner
        self.settings = settings
        self.device = runner.device
        self.spec = runner.spec
        self.vae_scale = int(pipe.vae_scale_factor)
        components = dict(components or {})
        self.encoder = PromptEncoder(pipe, self.device, runners=components)
        self._buffers: dict[tuple, tuple[dict[str, torch.Tensor], torch.Tensor]] = {}
        # One scheduler per sampler, as diffusers' pipeline keeps one: set_timesteps resets its state per batch.
        self.scheduler = make_scheduler(settings.scheduler, pipe.scheduler.config)
        self.vae_runner = components.get("vae_decoder")
        if self.vae_runner is None and pipe.vae is not None:
            if pipe.vae.dtype != torch.float32:
                pipe.vae.to(torch.float32)
            spec = VaeDecoderIOSpec.for_vae(pipe.vae, batch=_ANY, height=_ANY, width=_ANY)
            self.vae_runner = EagerRunner(pipe.vae, spec).__enter__()  # eager: nothing to allocate or release

    # ------------------------------------------------------------------ validation (before any work)
    @property
    def latent_size(self) -> tuple[int, int]:
        return self.settings.height // self.vae_scale, self.settings.width // self.vae_scale

    def runner_batch(self, images: int) -> int:
        return 2 * images if self.settings.cfg else images

    def validate(self, batch_sizes: Sequence[int]) -> None:
        """Raise a clear error if any batch of this run would fall outside the runner's shapes."""
        s = self.settings
        h, w = self.latent_size
        for label, px, lat in (("height", s.height, h), ("width", s.width, w)):
            if px % self.vae_scale or lat % self.spec.latent_multiple:
                step = self.vae_scale * self.spec.latent_multiple
                raise BadInputError(f"{label} {px} px gives latent {px / self.vae_scale:g}, but this UNet needs "
                                    f"latents that are multiples of {self.spec.latent_multiple}: use a multiple of "
                                    f"{step} px")
        for batch in sorted(set(batch_sizes)):
            self.spec.check(self.runner_batch(batch), h, w, what=f"{self.runner.name} backend at {s.height}x{s.width}"
                            f" px, {batch} image(s) per call{' x2 for guidance' if s.cfg else ''}")
            if self.vae_runner is not None:
                self.vae_runner.spec.check(batch, h, w, what=f"{self.vae_runner.name} VAE decoder at "
                                           f"{s.height}x{s.width} px, {batch} image(s) per call")
        for _, runner in self.encoder.pairs:
            runner.spec.check(1, what=f"{runner.name} {runner.spec.component} (one prompt per call)")

    # ------------------------------------------------------------------ buffers
    def _feed(self, conditions: Sequence[TextCondition]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The runner feed (filled with this batch's conditioning) and the guided-noise buffer, reused per shape."""
        images = len(conditions)
        rb = self.runner_batch(images)
        h, w = self.latent_size
        key = (rb, h, w)
        if key not in self._buffers:
            shapes, dtypes = self.spec.shapes(rb, h, w), self.spec.input_dtypes()
            feed = {name: torch.empty(shapes[name], dtype=dtypes[name], device=self.device)
                    for name in INPUT_NAMES}
            guided = torch.empty((images, *shapes[OUTPUT_NAME][1:]), dtype=torch.float32, device=self.device)
            self._buffers[key] = (feed, guided)
        feed, guided = self._buffers[key]
        uncond = images if self.settings.cfg else 0
        for j, cond in enumerate(conditions):
            feed["encoder_hidden_states"][uncond + j].copy_(cond.embeds[0])
            feed["text_embeds"][uncond + j].copy_(cond.pooled[0])
            if uncond:
                feed["encoder_hidden_states"][j].copy_(cond.negative_embeds[0])
                feed["text_embeds"][j].copy_(cond.negative_pooled[0])
        ids = time_ids(self.settings.height, self.settings.width)
        feed["time_ids"].copy_(ids.to(feed["time_ids"].dtype).expand_as(feed["time_ids"]))
        return feed, guided

    # ------------------------------------------------------------------ the loop
    def denoise(self, conditions: Sequence[TextCondition], seeds: Sequence[int], *, record_gates: bool = False,
                gate_steps: Sequence[int] | None = None, on_step: Callable[[int], None] | None = None) -> DenoiseResult:
        """Denoise one batch (one image per condition, each with its own seeded CPU generator)."""
        from diffusers.utils.torch_utils import randn_tensor

        if len(conditions) != len(seeds) or not conditions:
            raise BadInputError(f"need one seed per prompt; got {len(conditions)} prompt(s), {len(seeds)} seed(s)")
        s = self.settings
        images = len(conditions)
        h, w = self.latent_size
        sites = list(self.spec.gate_sites) if record_gates else []
        if record_gates and not sites:
            raise BadInputError(f"the {self.runner.name} backend returns no gate outputs; gate maps need an eager "
                                "UNet with gates or an export made with --gate-outputs")
        chosen = set(range(s.steps)) if gate_steps is None else set(gate_steps)
        start = time.perf_counter()
        with torch.inference_mode():
            scheduler = self.scheduler
            scheduler.set_timesteps(s.steps, device=self.device)
            if hasattr(scheduler, "set_begin_index"):
                scheduler.set_begin_index(0)
            generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
            shape = (images, self.spec.in_channels, h, w)
            latents = randn_tensor(shape, generator=generators, device=self.device, dtype=torch.float32)
            latents = latents * scheduler.init_noise_sigma
            feed, guided = self._feed(conditions)
            keeps_outputs = hasattr(scheduler, "model_outputs")  # multistep: history may alias model_output
            kwargs = step_kwargs(scheduler, generators, s.eta)
            sums = {site: torch.zeros((images, *self.spec.shapes(1, h, w)[GATE_PREFIX + site][1:]),
                                      dtype=torch.float32, device=self.device) for site in sites}
            recorded = 0
            for i, t in enumerate(scheduler.timesteps):
                model_in = scheduler.scale_model_input(latents, t)
                feed["sample"][:images].copy_(model_in)
                if s.cfg:
                    feed["sample"][images:].copy_(model_in)
                feed["timestep"].fill_(t)
                out = self.runner.infer(feed, check=False)
                noise = out[OUTPUT_NAME]
                target = torch.empty_like(guided) if keeps_outputs else guided
                if s.cfg:
                    torch.sub(noise[images:], noise[:images], out=target)
                    target.mul_(s.guidance).add_(noise[:images])
                else:
                    target.copy_(noise)
                if sites and i in chosen:
                    recorded += 1
                    for site in sites:
                        sums[site].add_(out[GATE_PREFIX + site][images:] if s.cfg else out[GATE_PREFIX + site])
                latents = scheduler.step(target, t, latents, **kwargs, return_dict=False)[0]
                if on_step is not None:
                    on_step(i)
            gates = {site: acc / max(recorded, 1) for site, acc in sums.items()} if sites else None
            _sync(self.device)
            if not bool(torch.isfinite(latents).all()):
                raise NonFiniteError(f"the {self.runner.name} backend produced NaN or infinite latents after {s.steps} "
                                     f"steps (guidance {s.guidance:g}, {s.scheduler}); check the gates / export with "
                                     "`maskattn-trt parity`, or try another scheduler or fp32")
        return DenoiseResult(latents, gates, time.perf_counter() - start, s.steps)

    # ------------------------------------------------------------------ decode
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """VAE decode (the ``vae_decoder`` runner: latent scaling and ``x / 2 + 0.5`` are inside its graph) ->
        uint8 images [B, H, W, 3] (the pipeline's post-processing)."""
        if self.vae_runner is None:
            raise BadInputError("the pipeline has no VAE and no vae_decoder runner was given: cannot decode")
        image = self.vae_runner.infer({LATENT: latents.float()})[IMAGE]
        if not bool(torch.isfinite(image).all()):
            raise NonFiniteError("the VAE decoded NaN or infinite pixels (the SDXL VAE overflows in fp16: keep it "
                                 "fp32); no image was written")
        image = image.float().clamp(0, 1)
        return (image.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
