"""The training loop on the tiny pipeline: learning, frozen backbone, exact resume, crash-safe checkpoints."""

import dataclasses

import pytest
import torch

from maskattn_trt.errors import BackendUnavailableError, CheckpointError, ConfigError
from maskattn_trt.gates import gate_heads, gates_hash, load_gates
from maskattn_trt.models import build_unet, tiny_sdxl_pipeline
from maskattn_trt.train import checkpoint as ckpt
from maskattn_trt.train.loop import learning_rate, train
from maskattn_trt.train.metrics import read_metrics
from maskattn_trt.train.recipe import OptimSection

from ..conftest import has_module
from .helpers import tiny_recipe


def _backbone(unet):
    return {name: p.detach().clone() for name, p in unet.named_parameters(remove_duplicate=False)
            if ".gate_head." not in name}


def test_learning_rate_warms_up_then_decays_by_cosine():
    optim = OptimSection(lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    lrs = [learning_rate(step, optim, 110) for step in range(110)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:10], strict=False))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    assert lrs[60] == pytest.approx(1e-4 + 0.9e-3 * 0.5, rel=1e-6)  # halfway through the cosine
    assert learning_rate(110, optim, 110) == pytest.approx(1e-4)


def test_fixed_batch_loss_goes_down_and_only_gate_weights_change(tmp_path):
    # All 16 cross-attention sites gated: on a random tiny UNet cross-attention moves the loss little, so the
    # probe (same 4 images, same noise and timesteps, 4 draws) is what shows the gates learning.
    recipe = tiny_recipe(tmp_path, "gates.stage='all'", "data.synthetic_samples=4", "optim.lr=1e-2",
                         "train.steps=30", "checkpoint.every=0", "log.every=10")
    pipe = tiny_sdxl_pipeline(0)
    backbone = _backbone(pipe.unet)
    text = {n: p.clone() for n, p in pipe.text_encoder_2.named_parameters()}
    result = train(recipe, pipe=pipe)
    before, after = result.probe_loss
    assert after < before - 5e-4, f"fixed-batch loss {before:.6f} -> {after:.6f}"
    # the backbone (and the text encoders) are bit-identical; the gates moved
    after_training = _backbone(pipe.unet)
    assert after_training.keys() == backbone.keys()
    for name, value in after_training.items():
        assert torch.equal(value, backbone[name]), name
    assert all(torch.equal(p, text[n]) for n, p in pipe.text_encoder_2.named_parameters())
    initial = build_unet("tiny-random", seed=0)
    torch.manual_seed(recipe.train.seed)
    from maskattn_trt.gates import install_gates

    install_gates(initial, recipe.gates)
    assert gates_hash(initial) != gates_hash(pipe.unet)
    # the saved file holds exactly the trained gates and loads into a fresh UNet
    fresh = build_unet("tiny-random", seed=0)
    load_gates(fresh, result.gates_path)
    assert gates_hash(fresh) == gates_hash(pipe.unet)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [10, 20, 30]
    assert len(records[-1]["open_fraction"]) == 17  # every cross-attention site of the tiny UNet
    assert all(0.0 <= v <= 1.0 for v in records[-1]["open_fraction"].values())
    assert all(r["grad_norm"] > 0 and r["lr"] > 0 for r in records)


def test_interrupted_and_resumed_run_ends_bit_identical(tmp_path):
    common = ("train.steps=8", "checkpoint.every=3", "checkpoint.keep=5", "log.every=2", "data.synthetic_samples=16")
    full = train(tiny_recipe(tmp_path / "full", *common))
    part = train(tiny_recipe(tmp_path / "part", *common), stop_after=4)  # pre-empted after step 4
    assert not part.finished and part.checkpoint.name == "step-00000004"
    resumed = train(tiny_recipe(tmp_path / "part", *common), resume=True)  # fresh objects, as a new process
    assert resumed.start_step == 4 and resumed.finished
    a, b = build_unet("tiny-random", seed=0), build_unet("tiny-random", seed=0)
    load_gates(a, full.gates_path)
    load_gates(b, resumed.gates_path)
    worst = max((x - y).abs().max().item() for x, y in zip(gate_heads(a)["mid_64x64"].parameters(),
                                                            gate_heads(b)["mid_64x64"].parameters(), strict=True))
    assert worst <= 1e-7, f"resumed run differs from the uninterrupted one by {worst:.3e}"
    assert full.losses[4:] == pytest.approx(resumed.losses, abs=1e-7)
    # metrics of the resumed run continue the file without duplicates
    assert [r["step"] for r in read_metrics(tmp_path / "part" / "metrics.jsonl")] == [2, 4, 6, 8]
    assert [p.name for p in ckpt.checkpoint_dirs(tmp_path / "part")] == ["step-00000003", "step-00000004",
                                                                          "step-00000006", "step-00000008"]


def test_a_crash_while_writing_a_checkpoint_leaves_the_previous_one_loadable(tmp_path, monkeypatch):
    recipe = tiny_recipe(tmp_path, "train.steps=4", "checkpoint.every=2", "data.synthetic_samples=8")
    real_save = torch.save

    def dies_mid_write(obj, path, *args, **kwargs):
        if "step-00000004" in str(path):
            with open(path, "wb") as handle:  # half a file, then the process "dies"
                handle.write(b"PK\x03\x04 partial")
            raise KeyboardInterrupt("simulated kill during checkpoint write")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(ckpt.torch, "save", dies_mid_write)
    with pytest.raises(KeyboardInterrupt):
        train(recipe)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-00000002"]  # no partial folder
    latest = ckpt.latest_checkpoint(tmp_path)
    state = ckpt.load_trainer_state(latest)
    assert state.step == 2 and state.position == (1, 0)  # 8 samples = 2 batches of 4: epoch 1 starts
    unet = build_unet("tiny-random", seed=0)
    load_gates(unet, latest / ckpt.GATES_FILE)
    monkeypatch.setattr(ckpt.torch, "save", real_save)
    resumed = train(recipe, resume=True)
    assert resumed.start_step == 2 and resumed.finished


def test_resume_refuses_foreign_or_broken_checkpoints(tmp_path):
    recipe = tiny_recipe(tmp_path, "train.steps=2", "checkpoint.every=2", "data.synthetic_samples=8")
    train(recipe)
    other = dataclasses.replace(recipe, gates=recipe.gates.replace(training_form="renormalized"))
    with pytest.raises(ConfigError, match="cannot resume"):
        train(other, resume=True)
    (tmp_path / "checkpoints" / "step-00000002" / ckpt.TRAINER_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        train(recipe, resume=tmp_path / "checkpoints" / "step-00000002")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])  # fp16 also goes through the grad scaler
def test_half_precision_vp_min_snr_and_gradient_checkpointing_train_with_fp32_gates(tmp_path, precision):
    recipe = tiny_recipe(tmp_path, f"model.precision='{precision}'", "model.gradient_checkpointing=true",
                         "train.prediction_type='v_prediction'", "train.min_snr_gamma=5.0", "train.steps=3",
                         "train.batch_size=2", "train.effective_batch=4", "data.synthetic_samples=8",
                         "checkpoint.every=0", "log.every=1")
    pipe = tiny_sdxl_pipeline(0)
    result = train(recipe, pipe=pipe)
    assert pipe.unet.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    assert pipe.vae.dtype == torch.float32
    assert all(p.dtype == torch.float32 for h in gate_heads(pipe.unet).values() for p in h.parameters())
    assert all(torch.isfinite(torch.tensor(result.losses)))
    assert not pipe.unet.is_gradient_checkpointing  # switched off again on the caller's pipeline


def test_gradient_checkpointing_gives_the_same_gradients(tmp_path):
    from maskattn_trt.train.loop import prepare_pipeline
    from maskattn_trt.train.objective import GatedDenoiser, Objective

    grads = []
    for checkpointing in (False, True):
        recipe = tiny_recipe(tmp_path, f"model.gradient_checkpointing={str(checkpointing).lower()}")
        pipe = prepare_pipeline(recipe, tiny_sdxl_pipeline(0), torch.device("cpu"))
        objective = Objective(pipe.scheduler.config)
        gen = torch.Generator().manual_seed(5)
        cond = {"latent_mean": torch.randn(2, 4, 16, 16, generator=gen), "latent_std": torch.rand(2, 4, 16, 16, generator=gen),
                "prompt_embeds": torch.randn(2, 77, 64, generator=gen), "pooled": torch.randn(2, 32, generator=gen),
                "time_ids": torch.tensor([[32.0, 48, 0, 8, 32, 32]] * 2)}
        objective.loss(GatedDenoiser(pipe.unet), cond, torch.Generator().manual_seed(1), torch.float32).backward()
        grads.append([p.grad.clone() for h in gate_heads(pipe.unet).values() for p in h.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert any(g.abs().sum() > 0 for g in grads[0])


@pytest.mark.skipif(has_module("tensorboard"), reason="tensorboard is installed: the missing-package message cannot show")
def test_tensorboard_without_the_package_says_what_to_install(tmp_path):
    with pytest.raises(BackendUnavailableError, match=r"pip install 'maskattn-trt\[train\]'"):
        train(tiny_recipe(tmp_path, "log.tensorboard=true", "train.steps=1"))
    assert not (tmp_path / "checkpoints").exists()
