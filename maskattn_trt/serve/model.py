"""The model one replica serves: pipeline + runner, loaded once, warmed up, driven one batch at a time.

This is the ONLY module of :mod:`maskattn_trt.serve` that imports the sampling package, so the names it takes
(below) are the whole contract between serving and sampling. Each compatible run of queued images goes
through the same :class:`Sampler` code path as ``maskattn-trt generate``: one seeded CPU generator per image,
one UNet call per step for the whole run (x2 with guidance); the VAE decodes one image at a time, because a
batched fp32 VAE decode on CPU can differ from a single-image one by one grey level while the denoised
latents are bit-identical whatever else shares the batch (measured on ONNX Runtime CPU, tests/serve).
"""

from __future__ import annotations

import io
import math
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .. import models
from ..errors import BadInputError, MaskAttnError
from ..sampling.backends import BACKENDS, load_model, open_backend  # noqa: F401 - BACKENDS re-exported to server
from ..sampling.generate import image_metadata
from ..sampling.prompts import Job
from ..sampling.sampler import Sampler, SampleSettings
from ..sampling.schedulers import SCHEDULERS
from .batching import GroupKey, Item, images_per_call
from .schema import GenerateParams, Limits

# Server-side caps (one place): most samplers kept per replica, most prompt encodings kept per sampler.
MAX_SAMPLERS = 8
DEFAULT_MAX_BATCH = 8
# The sampler warns about a prompt longer than CLIP's context; the server returns the cut words in metadata.
warnings.filterwarnings("ignore", message=r".*tokens and was truncated")


class Cancelled(MaskAttnError):
    """Every request of a running batch went away (client left, timeout): the rest of the work is dropped."""


@dataclass
class ImageResult:
    """One finished image (PNG bytes + generate's sidecar) or the error that stopped it."""

    png: bytes | None = None
    metadata: dict | None = None
    timings: dict | None = None  # server-side: queue_s, png_s, run_images
    error: Exception | None = None


@dataclass(frozen=True)
class ModelConfig:
    """What a replica loads (the ``generate`` options that choose model and backend)."""

    model: str = "tiny"
    backend: str = "onnxruntime"
    onnx: str | None = None
    engine: str | None = None
    gates: str | None = None
    threads: int | None = None
    max_batch: int | None = None  # images per UNet call (before x2 guidance); None = what the profile allows
    max_steps: int = 150
    max_images: int = 4


def default_side(model: str) -> int:
    """The size ``generate`` uses when none is given (128 px for ``tiny``, 64 for ``tiny-random``, 1024 for SDXL)."""
    return models.default_side(model)


class ServedModel:
    """Pipeline + opened runner of one replica. Not thread-safe: call :meth:`run` from one thread at a time."""

    def __init__(self, config: ModelConfig):
        import torch

        if config.threads:
            torch.set_num_threads(config.threads)
        self.config = config
        self.pipe, unet = load_model(config.model, config.backend)
        self.backend = open_backend(self.pipe, unet, config.backend, model=config.model, onnx=config.onnx,
                                    engine=config.engine, gates_path=config.gates, threads=config.threads)
        self.spec = self.backend.runner.spec
        self.profile_batch = self.spec.batch.max
        # default: what one call takes with guidance, at most DEFAULT_MAX_BATCH (eager runners have no profile)
        self.max_batch = config.max_batch or max(1, min(DEFAULT_MAX_BATCH, self.profile_batch // 2))
        if self.max_batch > self.profile_batch:
            raise BadInputError(f"--max-batch {self.max_batch} is more images than the runner's profile batch "
                                f"{self.spec.batch} can take in one call; pass --max-batch <= {self.profile_batch // 2}"
                                f" (guidance doubles the UNet batch) or export with a larger --batch range")
        self.limits = self._limits()
        self._samplers: OrderedDict[SampleSettings, Sampler] = OrderedDict()
        for module in (self.pipe.text_encoder, self.pipe.text_encoder_2, self.pipe.vae):
            if module is not None:
                module.to(self.backend.runner.device)
        self._active = self.backend.activate()  # the UNet runner and any text encoder / VAE runners of a tree
        self._active.__enter__()
        self.warm_seconds = 0.0

    def _limits(self) -> Limits:
        scale = int(self.pipe.vae_scale_factor)
        grid = scale * self.spec.latent_multiple
        multiple = grid * 8 // math.gcd(grid, 8)
        lo = max(self.spec.height.min, self.spec.width.min) * scale
        hi = min(self.spec.height.max, self.spec.width.max, 4096 // scale) * scale
        lo, hi = -(-lo // multiple) * multiple, hi // multiple * multiple
        side = min(max(default_side(self.config.model), lo), hi)
        return Limits(min_side=lo, max_side=hi, multiple=multiple, default_side=side, max_steps=self.config.max_steps,
                      max_images=self.config.max_images, schedulers=tuple(SCHEDULERS))

    def capacity(self, key: GroupKey) -> int:
        return images_per_call(key, self.max_batch, self.profile_batch)

    def describe(self) -> dict:
        return {"model": self.config.model, "backend": self.backend.name, "artifact": self.backend.artifact,
                "gates_hash": self.backend.gates.get("gates_hash"), "components": self.backend.placement(),
                "max_batch": self.max_batch,
                "profile_batch": str(self.spec.batch), "sizes": [self.limits.min_side, self.limits.max_side],
                "size_multiple": self.limits.multiple, "schedulers": list(self.limits.schedulers)}

    def close(self) -> None:
        if self.backend.runner.is_active:
            self._active.__exit__(None, None, None)

    # ------------------------------------------------------------------ work
    def _sampler(self, key: GroupKey) -> Sampler:
        width, height, steps, scheduler, guidance = key
        settings = SampleSettings(steps=steps, guidance=guidance, scheduler=scheduler, height=height, width=width)
        sampler = self._samplers.pop(settings, None)
        if sampler is None:
            sampler = Sampler(self.pipe, self.backend.runner, settings, components=self.backend.components)
            sampler.validate([self.capacity(key)])
        self._samplers[settings] = sampler
        while len(self._samplers) > MAX_SAMPLERS:
            self._samplers.popitem(last=False)
        return sampler

    def warm_up(self, steps: int = 2) -> float:
        """One full-capacity run at the default size (sessions, allocations, first-call costs)."""
        side = self.limits.default_side
        key = (side, side, steps, "euler", 5.0)
        params = GenerateParams("warm up", steps=steps, width=side, height=side)
        start = time.perf_counter()
        results = self.run([Item(params, seed) for seed in range(self.capacity(key))])
        failed = [r.error for r in results if r.error is not None]
        if failed:
            raise failed[0]
        self.warm_seconds = time.perf_counter() - start
        return self.warm_seconds

    def run(self, items: list[Item]) -> list[ImageResult]:
        """Run one compatible group (one UNet batch per step) and return one result per item."""
        key = items[0].key
        if any(item.key != key for item in items) or len(items) > self.capacity(key):
            raise MaskAttnError(f"internal: a run must be one compatible group of <= {self.capacity(key)} images")
        started = time.perf_counter()
        try:
            sampler = self._sampler(key)
            t0 = time.perf_counter()
            conds = [sampler.encoder(item.params.prompt, item.params.negative_prompt) for item in items]
            t1 = time.perf_counter()

            def stop_if_abandoned(_step: int) -> None:
                if all(item.cancelled for item in items):
                    raise Cancelled("every request of this batch was cancelled")

            result = sampler.denoise(conds, [item.seed for item in items], on_step=stop_if_abandoned)
            t2 = time.perf_counter()
            pixels = [sampler.decode(result.latents[i:i + 1])[0] for i in range(len(items))]
            t3 = time.perf_counter()
        except (MaskAttnError, ValueError) as exc:
            return [ImageResult(error=exc) for _ in items]
        steps = sampler.settings.steps
        timings = {"encode_s": round(t1 - t0, 4), "denoise_s": round(result.seconds, 4),
                   "denoise_step_ms": round(result.seconds / steps * 1e3, 3), "decode_s": round(t3 - t2, 4),
                   "batch_images": len(items)}
        out = []
        for item, cond, image in zip(items, conds, pixels, strict=True):
            p0 = time.perf_counter()
            job = Job(0, item.params.prompt, item.params.negative_prompt, item.seed)
            sidecar = image_metadata(job, self.config.model, sampler.settings, self.backend, dict(timings), cond.truncated)
            png = encode_png(image)
            serve = {"queue_s": round(started - item.enqueued, 4), "png_s": round(time.perf_counter() - p0, 4)}
            out.append(ImageResult(png, sidecar, serve))
        return out


def encode_png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()
