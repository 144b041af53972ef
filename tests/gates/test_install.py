"""Site selection on the real SDXL architecture (meta device: no weights allocated)."""

import pytest

from maskattn_trt import GateConfig, install_gates, remove_gates
from maskattn_trt.errors import ConfigError
from maskattn_trt.gates import cross_attention_sites, gate_heads, select_sites
from maskattn_trt.models import build_unet


@pytest.fixture(scope="module")
def sdxl_meta():
    return build_unet("sdxl", device="meta")


def _prefixes(sites):
    return sorted({".".join(s.split(".")[:2]) if not s.startswith("mid_block") else "mid_block" for s in sites})


def test_real_sdxl_has_70_cross_attention_layers(sdxl_meta):
    sites = cross_attention_sites(sdxl_meta)
    assert len(sites) == 70
    counts = {p: sum(s.startswith(p + ".") for s in sites)
              for p in ("down_blocks.1", "down_blocks.2", "mid_block", "up_blocks.0", "up_blocks.1")}
    assert counts == {"down_blocks.1": 4, "down_blocks.2": 20, "mid_block": 10, "up_blocks.0": 30, "up_blocks.1": 6}


@pytest.mark.parametrize(
    "stage, placement, count, prefixes",
    [
        ("mid", "encoder_decoder", 50, ["down_blocks.2", "up_blocks.0"]),
        ("high", "encoder_decoder", 10, ["down_blocks.1", "up_blocks.1"]),
        ("low", "encoder_decoder", 10, ["mid_block"]),
        ("all", "encoder_decoder", 70, ["down_blocks.1", "down_blocks.2", "mid_block", "up_blocks.0", "up_blocks.1"]),
        ("mid", "encoder", 20, ["down_blocks.2"]),
        ("mid", "decoder", 30, ["up_blocks.0"]),
    ],
)
def test_stage_and_placement_selection(sdxl_meta, stage, placement, count, prefixes):
    sites = select_sites(sdxl_meta, GateConfig(stage=stage, placement=placement))
    assert len(sites) == count
    assert _prefixes(sites) == prefixes


def test_install_on_meta_sdxl_reads_dimensions_from_the_modules(sdxl_meta):
    inst = install_gates(sdxl_meta, GateConfig())
    heads = gate_heads(sdxl_meta)
    assert set(heads) == {"mid_1280x2048"} and len(inst.sites) == 50
    head = heads["mid_1280x2048"]
    assert head.feature_net[1].weight.shape == (128, 1280)
    assert head.token_net[1].weight.shape == (128, 2048)
    trainable = [n for n, p in sdxl_meta.named_parameters() if p.requires_grad]
    assert trainable and all(".processor.gate_head." in n for n in trainable)
    remove_gates(sdxl_meta)
    assert not any(".processor.gate_head." in n for n, _ in sdxl_meta.named_parameters())


def test_empty_selection_is_a_clear_error(sdxl_meta):
    with pytest.raises(ConfigError, match="selects no cross-attention"):
        select_sites(sdxl_meta, GateConfig(stage="low", placement="encoder"))
