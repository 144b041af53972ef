import math

import pytest

from maskattn_trt import GateConfig
from maskattn_trt.errors import ConfigError


def test_defaults_match_the_paper():
    cfg = GateConfig()
    assert (cfg.stage, cfg.placement, cfg.threshold, cfg.negative_value, cfg.hidden_size, cfg.share_heads) == (
        "mid", "encoder_decoder", 0.5, -1.0e4, 128, True)
    assert cfg.threshold_logit == 0.0


@pytest.mark.parametrize("tau", [0.1, 0.3, 0.7, 0.95])
def test_threshold_logit_is_the_logit_of_tau(tau):
    z = GateConfig(threshold=tau).threshold_logit
    assert math.isclose(1 / (1 + math.exp(-z)), tau, rel_tol=1e-12)


@pytest.mark.parametrize(
    "changes, word",
    [
        ({"stage": "middle"}, "stage"),
        ({"placement": "both"}, "placement"),
        ({"threshold": -0.1}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": float("nan")}, "threshold"),
        ({"threshold": True}, "threshold"),
        ({"negative_value": 1.0}, "negative_value"),
        ({"negative_value": -1e9}, "negative_value"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"hidden_size": True}, "hidden_size"),
        ({"share_heads": "yes"}, "share_heads"),
        ({"training_form": "soft"}, "training_form"),
    ],
)
def test_invalid_values_are_rejected_with_the_field_named(changes, word):
    with pytest.raises(ConfigError, match=word):
        GateConfig(**changes)


def test_from_dict_rejects_unknown_keys_by_name():
    with pytest.raises(ConfigError, match="treshold"):
        GateConfig.from_dict({"treshold": 0.5})
    assert GateConfig.from_dict(GateConfig(stage="high").to_dict()) == GateConfig(stage="high")


def test_threshold_0_and_1_are_accepted_with_finite_logits():
    """The official config allows tau in [0, 1]; logit(0) / logit(1) are infinite, so they are clamped."""
    low, high = GateConfig(threshold=0.0).threshold_logit, GateConfig(threshold=1).threshold_logit
    assert math.isfinite(low) and math.isfinite(high) and low == -high == -3.4028234663852886e38
