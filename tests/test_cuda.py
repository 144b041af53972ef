"""The CUDA paths: gated UNet in fp16, gate training in bf16, the sampler with the eager runner, torch.compile.

Skipped with a reason where there is no CUDA GPU (``bench/gpu_suite.py`` runs them on one, with the timings).
"""

from __future__ import annotations

import pytest
import torch

from maskattn_trt import GateConfig, install_gates
from maskattn_trt.gates import gate_heads, randomize_gates, recorded_gates, set_gate_recording
from maskattn_trt.models import build_unet, tiny_sdxl_pipeline
from maskattn_trt.spec import OUTPUT_NAME, TOLERANCES, UNetIOSpec

from .conftest import requires_cuda
from .gates.helpers import unet_forward

pytestmark = [requires_cuda, pytest.mark.gpu]
CUDA = torch.device("cuda")


def _gated_tiny(seed: int = 0):
    unet = build_unet("tiny-random", seed=seed)
    torch.manual_seed(seed)
    install_gates(unet, GateConfig(stage="all"))
    randomize_gates(unet, seed=seed)
    return unet


def test_gated_unet_in_fp16_on_cuda_matches_fp32_on_cpu():
    unet = _gated_tiny()
    feed = UNetIOSpec.for_unet(unet).dummy_inputs(2, 32, 48, seed=11)
    with torch.no_grad():
        set_gate_recording(unet, True)
        ref = unet_forward(unet, feed)
        ref_gates = recorded_gates(unet)
        unet.to(CUDA, torch.float16)
        heads = list(gate_heads(unet).values())
        for head in heads:  # unet.to(dtype) casts the heads too; the contract is fp32 heads (prepare_pipeline does this)
            head.float()
        assert all(p.device.type == "cuda" and p.dtype == torch.float32 for h in heads for p in h.parameters())
        out = unet_forward(unet, {k: v.to(CUDA, torch.float16 if v.is_floating_point() and k != "timestep" else v.dtype)
                                  for k, v in feed.items()})
        gates = recorded_gates(unet)
    atol, rel = TOLERANCES[("fp32", "fp16")][OUTPUT_NAME]
    diff = out.float().cpu() - ref
    assert torch.isfinite(out).all()
    assert diff.norm().item() <= rel * ref.norm().item() + atol, (diff.norm() / ref.norm()).item()
    agree = torch.stack([(gates[s].cpu() == ref_gates[s]).float().mean() for s in ref_gates]).mean().item()
    assert agree >= TOLERANCES[("fp32", "fp16")]["gate_agreement"], agree
    assert 0.05 < torch.stack([g.float().mean() for g in gates.values()]).mean().item() < 0.95  # a real mix


def test_training_runs_in_bf16_on_cuda_with_fp32_gates(tmp_path):
    from maskattn_trt.train.loop import train

    from .train.helpers import tiny_recipe

    recipe = tiny_recipe(tmp_path, "model.device='cuda'", "model.precision='bf16'", "model.gradient_checkpointing=true",
                         "train.steps=3", "train.batch_size=2", "train.effective_batch=4", "data.synthetic_samples=8",
                         "checkpoint.every=0", "log.every=1")
    pipe = tiny_sdxl_pipeline(0)
    result = train(recipe, pipe=pipe)
    assert result.finished and all(torch.isfinite(torch.tensor(result.losses)))
    assert pipe.unet.device.type == "cuda" and pipe.unet.dtype == torch.bfloat16
    assert all(p.device.type == "cuda" and p.dtype == torch.float32
               for h in gate_heads(pipe.unet).values() for p in h.parameters())
    assert result.gates_path.is_file()


def test_sampler_with_the_eager_runner_on_cuda():
    from maskattn_trt.sampling.backends import open_backend
    from maskattn_trt.sampling.sampler import Sampler, SampleSettings

    images = {}
    for device in ("cpu", "cuda"):
        pipe = tiny_sdxl_pipeline(0)
        torch.manual_seed(0)
        install_gates(pipe.unet)
        randomize_gates(pipe.unet)
        pipe.to(device)
        backend = open_backend(pipe, pipe.unet, "eager")
        sampler = Sampler(pipe, backend.runner, SampleSettings(steps=4, height=64, width=64))
        assert sampler.device.type == device
        with backend.runner:
            result = sampler.denoise([sampler.encoder("a red cat")], [3])
            assert result.latents.device.type == device and torch.isfinite(result.latents).all()
            images[device] = sampler.decode(result.latents)
    # same seeds (CPU generators), same weights: the images agree up to TF32 convolutions on the GPU
    assert abs(images["cpu"].astype(float) - images["cuda"].astype(float)).mean() < 2.0


def test_gated_unet_compiles_without_graph_breaks():
    from maskattn_trt.gates import UNetGraph
    from maskattn_trt.spec import INPUT_NAMES

    unet = _gated_tiny().to(CUDA)
    spec = UNetIOSpec.for_unet(unet)
    feed = spec.dummy_inputs(2, 32, 32, seed=2, device=CUDA)
    torch._dynamo.reset()
    with torch.no_grad():
        explained = torch._dynamo.explain(UNetGraph(unet, spec))(*[feed[n] for n in INPUT_NAMES])
    assert explained.graph_break_count == 0, [b.reason for b in explained.break_reasons]
    assert explained.graph_count == 1
