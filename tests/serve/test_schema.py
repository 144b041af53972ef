"""Request validation without a server: every bad field is named with what was expected and what was found."""

from __future__ import annotations

import json

import pytest

from maskattn_trt.serve.schema import GenerateParams, Limits, RequestError, decode_body, parse_generate

LIMITS = Limits(min_side=32, max_side=128, multiple=8, default_side=64, max_steps=50, max_images=4,
                schedulers=("euler", "euler_a"), max_prompt_chars=100, max_body_bytes=1000)


def test_defaults_and_seeds():
    params = parse_generate({"prompt": "a cat", "seed": 7, "images": 3, "guidance": 5}, LIMITS)
    assert params == GenerateParams("a cat", None, 30, 5.0, "euler", 7, 64, 64, 3)
    assert params.seeds == [7, 8, 9] and isinstance(params.guidance, float)


@pytest.mark.parametrize("body,field,found", [
    ({"prompt": "x", "scheduler": "lms"}, "scheduler", '"lms" (str)'),
    ({"prompt": "x", "width": 60}, "width", "60 (int)"),
    ({"prompt": "x", "height": 256}, "height", "256 (int)"),
    ({"prompt": "x", "height": 16}, "height", "16 (int)"),
    ({"prompt": "x", "width": 64.0}, "width", "64.0 (float)"),
    ({"prompt": "x", "steps": 0}, "steps", "0 (int)"),
    ({"prompt": "x", "steps": 51}, "steps", "51 (int)"),
    ({"prompt": "x", "steps": True}, "steps", "true (boolean)"),
    ({"prompt": ""}, "prompt", '"" (str)'),
    ({"prompt": None}, "prompt", "null (NoneType)"),
    ({"prompt": ["a"]}, "prompt", '["a"] (list)'),
    ({"prompt": "x" * 101}, "prompt", "101 characters"),
    ({"prompt": "x", "negative_prompt": 1}, "negative_prompt", "1 (int)"),
    ({"prompt": "x", "guidance": -1}, "guidance", "-1 (int)"),
    ({"prompt": "x", "guidance": float("nan")}, "guidance", "NaN (float)"),
    ({"prompt": "x", "seed": -1}, "seed", "-1 (int)"),
    ({"prompt": "x", "images": 5}, "images", "5 (int)"),
    ({"prompt": "x", "size": 64}, "size", "unknown field 'size'"),
])
def test_bad_field(body, field, found):
    with pytest.raises(RequestError) as caught:
        parse_generate(body, LIMITS)
    err = caught.value.body()["error"]
    assert (caught.value.status, err["field"], err["found"]) == (422, field, found)
    assert err["expected"] and field in err["message"]


def test_multiple_of_the_profile_grid():
    coarse = Limits(min_side=32, max_side=256, multiple=32, default_side=64, schedulers=("euler",))
    with pytest.raises(RequestError, match="multiple of 32"):
        parse_generate({"prompt": "x", "width": 72}, coarse)


def test_body_decoding():
    assert decode_body(json.dumps({"prompt": "x"}).encode(), LIMITS) == {"prompt": "x"}
    for raw, status in ((b"{oops", 400), (b"\xff\xfe", 400), (b"[1]", 400), (b"x" * 1001, 413)):
        with pytest.raises(RequestError) as caught:
            decode_body(raw, LIMITS)
        assert caught.value.status == status
