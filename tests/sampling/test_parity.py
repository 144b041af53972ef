"""The sampler reproduces diffusers' StableDiffusionXLPipeline (the reference) on the tiny pipeline.

Gates are forced open so the eager runner computes the stock UNet that diffusers calls; final latents
(output_type='latent') must agree to max abs diff <= 1e-5 for every scheduler.
"""

from __future__ import annotations

import pytest
import torch

from maskattn_trt.gates import set_gates_open
from maskattn_trt.runners import EagerRunner
from maskattn_trt.sampling.sampler import Sampler, SampleSettings
from maskattn_trt.sampling.schedulers import SCHEDULERS, make_scheduler
from maskattn_trt.spec import UNetIOSpec

ATOL = 1e-5  # max abs diff of final latents vs diffusers (fp32, same seed / scheduler / steps / guidance)
# Batched calls: CLIP and the UNet round differently at another batch size (pooled embeds differ by 2.4e-7),
# amplified over the steps to ~1.1e-6 of the latents' scale; the bound is stated relative to max |latents|.
BATCH_RTOL = 2e-6
STEPS, SIZE = 4, 64


@pytest.fixture(scope="module")
def opened(gated_pipe):
    pipe = gated_pipe
    set_gates_open(pipe.unet, True)
    yield pipe
    set_gates_open(pipe.unet, False)


def _ours(pipe, name, prompts, negatives, seeds, guidance=5.0):
    spec = UNetIOSpec.for_unet(pipe.unet, vae_scale=pipe.vae_scale_factor)
    settings = SampleSettings(steps=STEPS, guidance=guidance, scheduler=name, height=SIZE, width=SIZE)
    with EagerRunner(pipe.unet, spec) as runner:
        sampler = Sampler(pipe, runner, settings)
        sampler.validate([len(prompts)])
        conds = [sampler.encoder(p, n) for p, n in zip(prompts, negatives, strict=True)]
        return sampler.denoise(conds, seeds).latents


def _reference(pipe, name, prompts, negatives, seeds, guidance=5.0):
    original = pipe.scheduler
    pipe.scheduler = make_scheduler(name, original.config)
    try:
        return pipe(prompts, negative_prompt=None if negatives[0] is None else negatives,
                    num_inference_steps=STEPS, guidance_scale=guidance, height=SIZE, width=SIZE,
                    generator=[torch.Generator().manual_seed(s) for s in seeds], output_type="latent").images
    finally:
        pipe.scheduler = original


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_matches_diffusers_every_scheduler(opened, name):
    args = (["a red cat on a blue sofa"], [None], [7])
    ours, ref = _ours(opened, name, *args), _reference(opened, name, *args)
    diff = (ours - ref).abs().max().item()
    assert ref.abs().max() > 0.1, "reference latents are degenerate"
    assert diff <= ATOL, f"{name}: max |sampler - diffusers| = {diff:.2e} > {ATOL:.0e}"


@pytest.mark.parametrize("name", ["euler_a", "dpmpp_2m_karras"])
def test_matches_diffusers_batched_with_negative_prompts(opened, name):
    """Two prompts in one call, each with its own generator (ancestral noise included) and negative prompt."""
    args = (["a red cat", "a dog in the snow"], ["blurry", "a cat"], [3, 11])
    ours, ref = _ours(opened, name, *args), _reference(opened, name, *args)
    diff, bound = (ours - ref).abs().max().item(), BATCH_RTOL * ref.abs().max().item()
    assert diff <= bound, f"{name}: max |sampler - diffusers| = {diff:.2e} > {bound:.2e}"


def test_matches_diffusers_without_guidance(opened):
    args = (["a red cat"], [None], [5])
    ours, ref = _ours(opened, "euler", *args, guidance=1.0), _reference(opened, "euler", *args, guidance=1.0)
    assert (ours - ref).abs().max().item() <= ATOL


def test_batch_does_not_change_an_image(opened):
    """A seed gives the same image alone or inside a batch (per-image generators)."""
    alone = _ours(opened, "euler_a", ["a dog in the snow"], [None], [11])
    batched = _ours(opened, "euler_a", ["a red cat", "a dog in the snow"], [None, None], [3, 11])
    diff, bound = (alone[0] - batched[1]).abs().max().item(), BATCH_RTOL * alone.abs().max().item()
    assert diff <= bound, f"max |alone - in batch| = {diff:.2e} > {bound:.2e}"


@pytest.mark.parametrize("name", ["dpmpp_2m_karras", "unipc"])
def test_multistep_state_resets_between_batches(opened, name):
    """The sampler keeps one scheduler; its multistep history must not leak into the next batch."""
    spec = UNetIOSpec.for_unet(opened.unet, vae_scale=opened.vae_scale_factor)
    with EagerRunner(opened.unet, spec) as runner:
        sampler = Sampler(opened, runner, SampleSettings(steps=3, scheduler=name, height=SIZE, width=SIZE))
        cond = sampler.encoder("a red cat")
        first, other, again = (sampler.denoise([cond], [seed]).latents for seed in (1, 2, 1))
    assert torch.equal(first, again) and not torch.equal(first, other)
