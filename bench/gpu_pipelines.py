"""The ``generate`` part of ``bench/gpu_suite.py``: the project's sampler on CUDA with the eager runner.

Two random-weight pipelines, built offline on the device:
  tiny       the project's tiny SDXL pipeline (``tiny_sdxl_pipeline``), fp32
  sdxl-size  the real SDXL UNet config (fp16), SDXL-size CLIP-L / OpenCLIP-bigG text encoders (fp16, over the
             project's small vocabulary) and the SDXL VAE config (fp32, as the sampler decodes)
For each: images through ``Sampler.denoise`` + ``decode`` (stock and gated UNet alternating), the UNet call
alone at the same shapes, and the sampler's own cost per step with the UNet replaced by an instant stub.
"""

from __future__ import annotations

import statistics
import time

import torch
from gpu_common import build_unet_on, stats, sync, time_call

from maskattn_trt.runners import Runner
from maskattn_trt.spec import OUTPUT_NAME


class InstantRunner(Runner):
    """Benchmark-only UNet stand-in on the device: returns a preallocated noise prediction at once."""

    name = "instant"

    def __init__(self, spec, device: torch.device):
        super().__init__(spec)
        self._device = device
        self._out: dict[tuple, torch.Tensor] = {}

    @property
    def device(self) -> torch.device:
        return self._device

    def infer_impl(self, feed):
        shape = tuple(feed["sample"].shape)
        if shape not in self._out:
            self._out[shape] = torch.randn(shape, device=self._device, dtype=self.spec.torch_dtype) * 0.5
        return {OUTPUT_NAME: self._out[shape]}


def sdxl_size_pipeline(device: torch.device, unet):
    """A StableDiffusionXLPipeline of SDXL-size random components around ``unet`` (no download)."""
    from diffusers import AutoencoderKL, StableDiffusionXLPipeline
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from maskattn_trt.models import tiny_sdxl_pipeline
    from maskattn_trt.models.tiny import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    vocab = len(tokenizer)
    common = dict(bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1, vocab_size=vocab,
                  max_position_embeddings=77, layer_norm_eps=1e-5)
    torch.manual_seed(1)
    with torch.device(device):
        clip_l = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                              num_attention_heads=12, projection_dim=768, hidden_act="quick_gelu",
                                              **common))
        clip_g = CLIPTextModelWithProjection(CLIPTextConfig(hidden_size=1280, intermediate_size=5120,
                                                            num_hidden_layers=32, num_attention_heads=20,
                                                            projection_dim=1280, hidden_act="gelu", **common))
        vae = AutoencoderKL(block_out_channels=[128, 256, 512, 512], in_channels=3, out_channels=3,
                            down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                            latent_channels=4, layers_per_block=2, norm_num_groups=32, sample_size=1024,
                            scaling_factor=0.13025)
    scheduler = tiny_sdxl_pipeline(0).scheduler  # the SDXL Euler configuration the tiny pipeline ships
    pipe = StableDiffusionXLPipeline(vae=vae.eval(), text_encoder=clip_l.half().eval(),
                                     text_encoder_2=clip_g.half().eval(), tokenizer=tokenizer,
                                     tokenizer_2=tiny_tokenizer(), unet=unet, scheduler=scheduler,
                                     force_zeros_for_empty_prompt=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _measure(pipe, unet, pixels: int, args, device) -> dict:
    from maskattn_trt import GateConfig, install_gates
    from maskattn_trt.gates import remove_gates
    from maskattn_trt.sampling.backends import open_backend
    from maskattn_trt.sampling.sampler import Sampler, SampleSettings

    stock = dict(unet.attn_processors)
    torch.manual_seed(0)
    install_gates(unet, GateConfig())
    gated = dict(unet.attn_processors)
    settings = SampleSettings(steps=args.steps, guidance=5.0, scheduler="euler", height=pixels, width=pixels)
    backend = open_backend(pipe, unet, "eager")  # what `generate --backend eager` opens
    sampler = Sampler(pipe, backend.runner, settings)
    sampler.validate([1])
    rows: dict[str, dict[str, list[float]]] = {v: {"encode_s": [], "denoise_step_ms": [], "decode_s": []}
                                               for v in ("stock", "gated-mid")}
    finite = True
    with backend.runner:
        sampler.denoise([sampler.encoder("warm up")], [0])  # kernels, allocator, scheduler tables
        n = 0
        for _ in range(2):
            for variant, procs in (("stock", stock), ("gated-mid", gated)):
                unet.set_attn_processor(dict(procs))
                for _ in range(args.images):
                    n += 1
                    t0 = time.perf_counter()
                    cond = sampler.encoder(f"a red cat on a blue sofa, photo {n}")
                    sync(device)
                    t1 = time.perf_counter()
                    result = sampler.denoise([cond], [n])
                    t2 = time.perf_counter()
                    sampler.decode(result.latents)
                    t3 = time.perf_counter()
                    finite &= bool(torch.isfinite(result.latents).all())
                    rows[variant]["encode_s"].append(t1 - t0)
                    rows[variant]["denoise_step_ms"].append(result.seconds / settings.steps * 1e3)
                    rows[variant]["decode_s"].append(t3 - t2)
        # the UNet call alone, at the sampler's shapes (batch 2 = CFG)
        h, w = sampler.latent_size
        feed = backend.runner.spec.dummy_inputs(2, h, w, seed=3, device=device)
        unet_ms = {}
        for variant, procs in (("stock", stock), ("gated-mid", gated)):
            unet.set_attn_processor(dict(procs))
            for _ in range(3):
                backend.runner.infer(feed, check=False)
            unet_ms[variant] = stats([time_call(lambda: backend.runner.infer(feed, check=False), device) for _ in range(20)])
    stub = InstantRunner(backend.runner.spec, device)
    with stub:
        fake = Sampler(pipe, stub, settings)
        cond = fake.encoder("warm up")
        fake.denoise([cond], [0])
        overhead = [fake.denoise([cond], [s]).seconds / settings.steps * 1e3 for s in range(5)]
    remove_gates(unet)
    out = {"pixels": pixels, "latent": list(sampler.latent_size), "steps": settings.steps, "cfg_batch": 2,
           "latents_finite": finite, "unet_call_ms": unet_ms,
           "sampler_overhead_ms_per_step": stats(overhead)}
    for variant, values in rows.items():
        out[variant] = {"encode_ms": stats([v * 1e3 for v in values["encode_s"]]),
                        "denoise_step_ms": stats(values["denoise_step_ms"]),
                        "decode_ms": stats([v * 1e3 for v in values["decode_s"]])}
        per_step = statistics.median(values["denoise_step_ms"])
        out[variant]["loop_minus_unet_ms_per_step"] = round(per_step - unet_ms[variant]["median"], 3)
        out[variant]["image_s"] = round(statistics.median(values["encode_s"]) + per_step * settings.steps / 1e3
                                        + statistics.median(values["decode_s"]), 3)
    ov = out["sampler_overhead_ms_per_step"]["median"]
    out["sampler_overhead_share"] = round(ov / (ov + unet_ms["gated-mid"]["median"]), 5)
    return out


def measure_generate(args, device) -> dict:
    from maskattn_trt.models import tiny_sdxl_pipeline

    record = {}
    pipe = tiny_sdxl_pipeline(0).to(device)
    record["tiny"] = _measure(pipe, pipe.unet, args.latent * 2, args, device)  # the tiny VAE halves
    del pipe
    if args.preset != "tiny":
        unet = build_unet_on(args.preset, device, torch.float16 if device.type == "cuda" else torch.float32)
        pipe = sdxl_size_pipeline(device, unet)
        record[f"{args.preset}-size"] = _measure(pipe, unet, args.latent * 8, args, device)
    return record
