"""Gate checkpoints: bit-exact round trip, refusal of foreign / corrupted files, official gate_final.pt import."""

import json
import pickle

import pytest
import torch

from maskattn_trt import GateConfig, install_gates, load_gates, load_official_gates, save_gates
from maskattn_trt.errors import CheckpointError
from maskattn_trt.gates import gate_heads, randomize_gates, read_gate_checkpoint
from maskattn_trt.models import build_unet
from maskattn_trt.spec import UNetIOSpec

from .helpers import official_checkpoint_file, unet_forward


@pytest.fixture
def gated(tiny_unet):
    install_gates(tiny_unet, GateConfig(stage="all"))
    randomize_gates(tiny_unet, seed=3)
    return tiny_unet


def _state(unet):
    return {k: v.clone() for k, v in unet.state_dict().items() if ".gate_head." in k}


def test_round_trip_is_bit_exact(gated, tmp_path):
    path = save_gates(gated, tmp_path / "g.safetensors")
    fresh = build_unet("tiny-random", seed=0)
    meta = load_gates(fresh, path)  # installs the checkpoint's config itself
    assert meta["config"]["stage"] == "all"
    a, b = _state(gated), _state(fresh)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    feed = UNetIOSpec.for_unet(fresh).dummy_inputs(1, 16, 16, seed=1)
    with torch.no_grad():
        assert torch.equal(unet_forward(gated, feed), unet_forward(fresh, feed))
    assert not list(tmp_path.glob(".*tmp"))


def test_shared_heads_are_stored_once(gated, tmp_path):
    tensors, meta = read_gate_checkpoint(save_gates(gated, tmp_path / "g.safetensors"))
    assert {k.split(".")[0] for k in tensors} == set(gate_heads(gated))
    assert len(meta["sites"]) == 17 and set(meta["head_of_site"].values()) == set(gate_heads(gated))


def _tiny_variant(**changes):
    from diffusers import UNet2DConditionModel

    from maskattn_trt.models.tiny import UNET_PRESETS

    torch.manual_seed(0)
    return UNet2DConditionModel(**{**UNET_PRESETS["tiny-random"], **changes}).eval()


def test_checkpoint_for_another_unet_is_refused(gated, tmp_path):
    path = save_gates(gated, tmp_path / "g.safetensors")
    # same cross-attention sites and gate head shapes, another backbone (the time embedding is wider)
    other = _tiny_variant(addition_time_embed_dim=16, projection_class_embeddings_input_dim=6 * 16 + 32)
    with pytest.raises(CheckpointError, match="another UNet architecture"):
        load_gates(other, path)
    small = build_unet("small", seed=0)
    with pytest.raises(CheckpointError):
        load_gates(small, path)


def test_checkpoint_for_another_config_is_refused(gated, tmp_path):
    path = save_gates(gated, tmp_path / "g.safetensors")
    other = build_unet("tiny-random", seed=0)
    install_gates(other, GateConfig(stage="all", threshold=0.6))
    with pytest.raises(CheckpointError, match="threshold"):
        load_gates(other, path)


def test_corrupted_checkpoints_are_refused(gated, tmp_path):
    path = save_gates(gated, tmp_path / "g.safetensors")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # flip a byte inside the tensor data
    flipped = tmp_path / "flipped.safetensors"
    flipped.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        load_gates(build_unet("tiny-random"), flipped)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_gates(build_unet("tiny-random"), truncated)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_gates(build_unet("tiny-random"), tmp_path / "missing.safetensors")


@pytest.mark.parametrize("share", [True, False])
def test_official_checkpoint_loads_and_reproduces_outputs(tmp_path, share):
    source = build_unet("tiny-random", seed=0)
    install_gates(source, GateConfig(stage="all", share_heads=share))
    randomize_gates(source, seed=5)
    path = official_checkpoint_file(source, tmp_path / "gate_final.pt")
    target = build_unet("tiny-random", seed=0)
    load_official_gates(target, path)
    feed = UNetIOSpec.for_unet(target).dummy_inputs(2, 16, 16, seed=2)
    with torch.no_grad():
        assert torch.equal(unet_forward(source, feed), unet_forward(target, feed))


def test_official_checkpoint_is_never_unpickled_unsafely(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "gate_final.pt"
    path.write_bytes(pickle.dumps({"format": "maskattn-sdxl-gates-v1", "x": Evil()}))
    with pytest.raises(CheckpointError, match="weights-only"):
        load_official_gates(build_unet("tiny-random"), path)


def test_official_checkpoint_for_another_unet_is_refused(tmp_path):
    source = build_unet("tiny-random", seed=0)
    install_gates(source, GateConfig(stage="all"))
    path = official_checkpoint_file(source, tmp_path / "gate_final.pt", with_optimizer=False)
    payload = torch.load(path, weights_only=True)
    payload["selected_layers"] = payload["selected_layers"][:3]
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="another UNet"):
        load_official_gates(build_unet("tiny-random"), path)


def test_convert_official_to_safetensors_on_a_meta_sdxl(tmp_path):
    """Converting for the real SDXL architecture needs no SDXL weights (meta device)."""
    meta_unet = build_unet("sdxl", device="meta")
    install_gates(meta_unet, GateConfig())
    heads = gate_heads(meta_unet)
    state = {}
    gen = torch.Generator().manual_seed(0)
    for site, key in meta_unet._maskattn_installation.head_of_site.items():
        for name, p in heads[key].state_dict().items():
            state.setdefault(key + name, torch.randn(p.shape, generator=gen))
            state[f"{site}.processor.gate_head.{name}"] = state[key + name]
    payload = {
        "format": "maskattn-sdxl-gates-v1",
        "maskattn_config": {"stage": "mid", "placement": "encoder_decoder", "threshold": 0.5,
                            "negative_value": -1e4, "gate_hidden_dim": 128, "share_gate_heads_by_stage": True},
        "selected_layers": [s + ".processor" for s in meta_unet._maskattn_installation.sites],
        "gate_state_dict": {k: v for k, v in state.items() if ".processor." in k},
    }
    torch.save(payload, tmp_path / "gate_final.pt")
    from maskattn_trt import convert_official_checkpoint

    out = convert_official_checkpoint(tmp_path / "gate_final.pt", tmp_path / "gates.safetensors",
                                      build_unet("sdxl", device="meta"))
    tensors, meta = read_gate_checkpoint(out)
    assert len(meta["sites"]) == 50 and meta["extra"]["converted_from"] == "gate_final.pt"
    assert tensors["mid_1280x2048.feature_net.1.weight"].shape == (128, 1280)
    assert json.dumps(meta)  # metadata is plain JSON
