"""ORT-backed vs eager-backed generation (fp32, gated) on the same tiny UNet, gates and seeds."""

from __future__ import annotations

import pytest
import torch

from maskattn_trt.sampling.backends import open_backend
from maskattn_trt.sampling.sampler import Sampler, SampleSettings

RTOL_L2 = 1e-4  # relative L2 of final latents, ORT fp32 vs eager fp32 (gated)
GATE_AGREEMENT = 0.999  # share of (position, token, site) mean-gate values that agree to 1e-6
SETTINGS = SampleSettings(steps=4, guidance=5.0, scheduler="euler_a", height=64, width=64)


def _run(pipe, backend, onnx=None, gates=None, record=False):
    chosen = open_backend(pipe, pipe.unet, backend, model="tiny-random", onnx=onnx, gates_path=gates, gate_outputs=record)
    sampler = Sampler(pipe, chosen.runner, SETTINGS)
    sampler.validate([2])
    with chosen.runner:
        conds = [sampler.encoder("a red cat on a blue sofa"), sampler.encoder("a dog in the snow", "blurry")]
        return chosen, sampler.denoise(conds, [1, 2], record_gates=record)


@pytest.fixture(scope="module")
def both(gated_pipe, gates_checkpoint, fp32_export):
    return (_run(gated_pipe, "eager", gates=gates_checkpoint, record=True),
            _run(gated_pipe, "onnxruntime", onnx=fp32_export.out_dir, record=True))


def test_ort_matches_eager(both):
    (_, eager), (backend, ort) = both
    assert backend.name == "onnxruntime" and backend.gates["gates_hash"]
    assert torch.isfinite(ort.latents).all()
    rel = ((ort.latents - eager.latents).norm() / eager.latents.norm()).item()
    assert rel <= RTOL_L2, f"relative L2 ORT vs eager = {rel:.2e} > {RTOL_L2:.0e}"


def test_ort_gate_maps_match_eager(both):
    (_, eager), (_, ort) = both
    assert eager.gates.keys() == ort.gates.keys() and eager.gates
    for site, gate in eager.gates.items():
        assert gate.shape == ort.gates[site].shape
        agree = ((gate - ort.gates[site]).abs() <= 1e-6).float().mean().item()
        assert agree >= GATE_AGREEMENT, f"{site}: gate agreement {agree:.4f}"
        assert 0.0 < gate.mean().item() < 1.0, f"{site}: gates all open or all closed; the maps would be empty"


def test_eager_and_ort_record_same_gate_hash(gated_pipe, gates_checkpoint, fp32_export):
    pipe = gated_pipe
    eager = open_backend(pipe, pipe.unet, "eager", gates_path=gates_checkpoint)
    ort = open_backend(pipe, pipe.unet, "onnxruntime", model="tiny-random", onnx=fp32_export.out_dir)
    assert eager.gates["gates_hash"] == ort.gates["gates_hash"]
