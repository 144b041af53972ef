"""Issue 10 items 1-2: gates fit a UNet by architecture (names + shapes), and sites match by name."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from maskattn_trt import (
    GateConfig,
    convert_official_checkpoint,
    install_gates,
    load_gates,
    load_official_gates,
)
from maskattn_trt.errors import BadInputError, CheckpointError
from maskattn_trt.gates import gate_heads, randomize_gates, read_gate_checkpoint, save_gates, unet_fingerprint
from maskattn_trt.gates.install import fingerprint_matches, legacy_unet_fingerprints
from maskattn_trt.models import build_unet
from maskattn_trt.spec import UNetIOSpec
from maskattn_trt.utils.io import sha256_json

from .helpers import official_checkpoint_file, unet_forward

PUBLISHED_SDXL_CONFIG = Path(__file__).parents[1] / "data" / "sdxl_base_unet_config.json"


def _published_sdxl_on_meta():
    from diffusers import UNet2DConditionModel

    config = json.loads(PUBLISHED_SDXL_CONFIG.read_text())
    with torch.device("meta"):
        return UNet2DConditionModel.from_config(config)


def _official_sdxl_mid(path):
    """An official-format gate_final.pt for the SDXL architecture (random weights, stage mid, shared heads)."""
    source = build_unet("sdxl", device="meta")
    inst = install_gates(source, GateConfig())
    gen = torch.Generator().manual_seed(0)
    heads = {key: {name: torch.randn(p.shape, generator=gen) for name, p in head.state_dict().items()}
             for key, head in gate_heads(source).items()}
    payload = {
        "format": "maskattn-sdxl-gates-v1",
        "maskattn_config": {"stage": "mid", "placement": "encoder_decoder", "threshold": 0.5,
                            "negative_value": -1e4, "gate_hidden_dim": 128, "share_gate_heads_by_stage": True},
        "selected_layers": sorted(s + ".processor" for s in inst.sites),
        "gate_state_dict": {f"{site}.processor.gate_head.{name}": value
                            for site, key in inst.head_of_site.items() for name, value in heads[key].items()},
    }
    torch.save(payload, path)
    return path


def test_the_published_sdxl_config_differs_only_in_spelling():
    published = json.loads(PUBLISHED_SDXL_CONFIG.read_text())
    assert published["upcast_attention"] is None  # what made v1 fingerprints refuse it
    ours = build_unet("sdxl", device="meta")
    assert ours.config.upcast_attention is False
    assert unet_fingerprint(ours) == unet_fingerprint(_published_sdxl_on_meta())


def test_gates_converted_for_sdxl_load_on_a_unet_built_from_the_published_config(tmp_path):
    source = _official_sdxl_mid(tmp_path / "gate_final.pt")
    converted = convert_official_checkpoint(source, tmp_path / "gates.safetensors", build_unet("sdxl", device="meta"))
    target = _published_sdxl_on_meta()
    meta = load_gates(target, converted)
    assert len(meta["sites"]) == 50
    tensors, _ = read_gate_checkpoint(converted)
    loaded = {f"{k}.{n}": v for k, head in gate_heads(target).items() for n, v in head.state_dict().items()}
    assert loaded.keys() == tensors.keys() and all(torch.equal(loaded[k], tensors[k]) for k in tensors)


def _rewrite_fingerprint(path, fingerprint):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()["maskattn"])
    meta["unet_fingerprint"] = fingerprint
    save_file(load_file(str(path)), str(path), metadata={"maskattn": json.dumps(meta, sort_keys=True)})


def test_checkpoints_with_the_v1_config_fingerprint_still_load(tmp_path):
    """Files written before v2 hash the diffusers config; `--model sdxl` ones spell upcast_attention False."""
    source = _official_sdxl_mid(tmp_path / "gate_final.pt")
    path = convert_official_checkpoint(source, tmp_path / "gates.safetensors", build_unet("sdxl", device="meta"))
    builtin = build_unet("sdxl", device="meta")
    v1 = sha256_json({k: v for k, v in dict(builtin.config).items() if not k.startswith("_")})
    assert v1 in legacy_unet_fingerprints(builtin)
    _rewrite_fingerprint(path, v1)
    load_gates(_published_sdxl_on_meta(), path)  # None vs False: the same network
    load_gates(build_unet("sdxl", device="meta"), path)
    # ... but a v1 fingerprint of another architecture is still refused
    tiny = build_unet("tiny-random")
    install_gates(tiny, GateConfig())
    tiny_path = save_gates(tiny, tmp_path / "tiny.safetensors")
    _rewrite_fingerprint(tiny_path, v1)
    with pytest.raises(CheckpointError, match="another UNet architecture"):
        load_gates(build_unet("tiny-random"), tiny_path)
    assert not fingerprint_matches(tiny, None) and not fingerprint_matches(tiny, "")


@pytest.mark.parametrize("share", [True, False])
def test_official_stage_all_checkpoint_imports_with_its_name_sorted_layer_list(tmp_path, share):
    source = build_unet("tiny-random", seed=0)
    inst = install_gates(source, GateConfig(stage="all", share_heads=share))
    randomize_gates(source, seed=6)
    path = official_checkpoint_file(source, tmp_path / "gate_final.pt", with_optimizer=False)
    listed = [s.removesuffix(".processor") for s in torch.load(path, weights_only=True)["selected_layers"]]
    assert listed != list(inst.sites) and sorted(listed) == sorted(inst.sites)  # mid_block before up_blocks
    target = build_unet("tiny-random", seed=0)
    load_official_gates(target, path)
    feed = UNetIOSpec.for_unet(target).dummy_inputs(2, 16, 16, seed=4)
    with torch.no_grad():
        assert torch.equal(unet_forward(source, feed), unet_forward(target, feed))


def test_site_mismatches_name_the_missing_and_extra_sites(tmp_path):
    source = build_unet("tiny-random", seed=0)
    install_gates(source, GateConfig(stage="all"))
    path = official_checkpoint_file(source, tmp_path / "gate_final.pt", with_optimizer=False)
    payload = torch.load(path, weights_only=True)
    dropped = payload["selected_layers"][:2]
    payload["selected_layers"] = payload["selected_layers"][2:] + ["up_blocks.7.attentions.0.transformer_blocks.0.attn2"
                                                                   ".processor"]
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as err:
        load_official_gates(build_unet("tiny-random"), path)
    message = str(err.value)
    assert "2 site(s) this UNet gates are missing" in message
    assert all(d.removesuffix(".processor") in message for d in dropped)
    assert "1 site(s) this UNet does not gate (up_blocks.7.attentions.0" in message
    assert "17 sites" not in message

    ours = save_gates(source, tmp_path / "g.safetensors")
    _, meta = read_gate_checkpoint(ours)
    tensors = load_file(str(ours))
    meta["sites"] = list(reversed(meta["sites"]))  # order alone does not matter
    save_file(tensors, str(ours), metadata={"maskattn": json.dumps(meta, sort_keys=True)})
    load_gates(build_unet("tiny-random"), ours)
    gone, meta["sites"] = meta["sites"][0], meta["sites"][1:]
    save_file(tensors, str(ours), metadata={"maskattn": json.dumps(meta, sort_keys=True)})
    with pytest.raises(CheckpointError, match="1 site\\(s\\) this UNet gates are missing from the checkpoint") as err:
        load_gates(build_unet("tiny-random"), ours)
    assert gone in str(err.value)


def _v1_gates_hash(unet):
    """gates_hash as exports and engines recorded it before fingerprint v2 (config-hash fingerprint)."""
    import hashlib

    from maskattn_trt.gates.checkpoint import _content_hash, gate_tensors

    installation = unet._maskattn_installation.to_dict()
    installation["unet_fingerprint"] = sha256_json({k: v for k, v in dict(unet.config).items() if not k.startswith("_")})
    return hashlib.sha256((_content_hash(gate_tensors(unet)) + json.dumps(installation, sort_keys=True)).encode()
                          ).hexdigest()


def test_exports_recorded_with_v1_hashes_still_match_their_gates(tmp_path, tiny_pipe):
    from maskattn_trt.gates import gates_hash, gates_hashes
    from maskattn_trt.parity import reference_unet
    from maskattn_trt.sampling.backends import _refuse_other_gates, check_fits

    unet = build_unet("tiny-random", seed=0)
    install_gates(unet, GateConfig())
    randomize_gates(unet, seed=8)
    ckpt = save_gates(unet, tmp_path / "g.safetensors")
    old = _v1_gates_hash(unet)
    assert old != gates_hash(unet) and old in gates_hashes(unet)
    manifest = {"model": "tiny-random", "seed": 0, "gates_hash": old, "gate_checkpoint": {"path": str(ckpt)},
                "unet_fingerprint": sha256_json({k: v for k, v in dict(unet.config).items() if not k.startswith("_")})}
    _, reference = reference_unet(manifest, None, None)  # parity: the checkpoint is the exported one
    assert old in gates_hashes(reference)
    spec = UNetIOSpec.for_unet(tiny_pipe.unet, vae_scale=tiny_pipe.vae_scale_factor)
    check_fits(spec, tiny_pipe, reference, "old export", manifest, "tiny-random")  # fingerprint v1 accepted
    given = {"gates_hash": gates_hash(reference), "checkpoint": str(ckpt), "accepted_hashes": sorted(gates_hashes(reference))}
    _refuse_other_gates("old export", old, given)  # generate: --gates matches the old export's gates
    other = build_unet("tiny-random", seed=0)
    install_gates(other, GateConfig())
    randomize_gates(other, seed=9)
    with pytest.raises(BadInputError, match="export / build again"):
        _refuse_other_gates("old export", _v1_gates_hash(other), given)
