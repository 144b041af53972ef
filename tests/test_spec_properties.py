"""Property-based tests of shape-range and engine-profile parsing (``Range.parse``, ``resolve_profile``)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskattn_trt.errors import BadInputError
from maskattn_trt.spec import Range, UNetIOSpec, resolve_profile

SETTINGS = settings(max_examples=80, deadline=None)
positive = st.integers(1, 10_000)


@st.composite
def ranges(draw):
    values = sorted(draw(st.lists(positive, min_size=3, max_size=3)))
    return Range(*values)


@SETTINGS
@given(ranges())
def test_a_range_round_trips_through_its_text(r):
    assert Range.parse(str(r), "--x") == r
    assert Range.parse(str(r.opt), "--x") == Range(r.opt, r.opt, r.opt)  # one value: a static dimension


@SETTINGS
@given(st.text(max_size=20))
def test_any_text_parses_to_a_valid_range_or_fails_with_a_bad_input_error_naming_the_option(text):
    try:
        r = Range.parse(text, "--height")
    except BadInputError as exc:
        assert "--height" in str(exc)
    else:
        assert 0 < r.min <= r.opt <= r.max


@SETTINGS
@given(st.lists(st.integers(-5, 50), min_size=3, max_size=3))
def test_unordered_or_non_positive_values_are_refused(values):
    text = ":".join(map(str, values))
    a, b, c = values
    if 0 < a <= b <= c:
        assert Range.parse(text, "--batch") == Range(a, b, c)
    else:
        with pytest.raises(BadInputError, match="--batch"):
            Range.parse(text, "--batch")


SPEC = UNetIOSpec(in_channels=4, out_channels=4, cross_attention_dim=2048, text_embeds_dim=1280, batch=Range(1, 2, 4),
                  height=Range(16, 64, 128), width=Range(16, 64, 128))


@st.composite
def pixel_ranges(draw):
    """Pixel ranges on this spec's grid (latent multiple x VAE scale) inside its exported latent range."""
    grid = SPEC.latent_multiple * SPEC.vae_scale
    steps = sorted(draw(st.lists(st.integers(SPEC.height.min * SPEC.vae_scale // grid,
                                             SPEC.height.max * SPEC.vae_scale // grid), min_size=3, max_size=3)))
    return Range(*(s * grid for s in steps))


@SETTINGS
@given(pixel_ranges(), pixel_ranges(), st.booleans())
def test_pixel_profiles_convert_to_latents_and_back(height, width, static):
    profile = resolve_profile(SPEC, batch="1:2:4", height=str(height), width=str(width), static=static)
    d = profile.to_dict(SPEC)
    expected_h = [height.opt] * 3 if static else [height.min, height.opt, height.max]
    expected_w = [width.opt] * 3 if static else [width.min, width.opt, width.max]
    assert d["pixel_height"] == expected_h and d["pixel_width"] == expected_w
    assert d["latent_height"] == [v // SPEC.vae_scale for v in expected_h]
    assert profile.height.within(SPEC.height) and profile.width.within(SPEC.width)
    assert d["static"] == static  # batch 1:2:4 is dynamic unless --static pins it


@SETTINGS
@given(st.integers(1, 4096), st.integers(1, 4096), st.integers(1, 4096))
def test_any_pixel_range_is_accepted_only_on_the_grid_and_inside_the_export(a, b, c):
    text = f"{a}:{b}:{c}"
    grid = SPEC.latent_multiple * SPEC.vae_scale
    ok = (a <= b <= c and all(v % grid == 0 for v in (a, b, c))
          and SPEC.height.min * SPEC.vae_scale <= a and c <= SPEC.height.max * SPEC.vae_scale)
    if ok:
        assert resolve_profile(SPEC, height=text).height == Range(a // 8, b // 8, c // 8)
    else:
        with pytest.raises(BadInputError, match="--height"):
            resolve_profile(SPEC, height=text)
