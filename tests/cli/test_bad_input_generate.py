"""Bad input to `generate` and `gates`: every numeric option at 0 / negative / huge / NaN / inf, every path
option as missing / directory / empty / random bytes / a file where a folder goes, every enum unknown.
Each fails in one line with exit 2 (6 for a missing GPU) before any model is loaded, and writes nothing."""

from __future__ import annotations

import pytest

from maskattn_trt.cli.options import FiniteFloat

from .catalogue import BACKEND, USAGE, assert_refused, bad_files, listing

BASE = ("generate", "--prompt", "a red cat", "--no-progress")

NUMERIC = [
    ("--steps", "0"), ("--steps", "-1"), ("--steps", "nan"),
    ("--guidance", "nan"), ("--guidance", "inf"), ("--guidance", "-inf"), ("--guidance", "-1"), ("--guidance", "x"),
    ("--height", "0"), ("--height", "-64"), ("--height", "12"), ("--width", "0"), ("--width", "inf"),
    ("--batch", "0"), ("--images", "0"), ("--images", "-3"), ("--threads", "0"), ("--seed", "-1"),
    ("--seed", str(2**64)),
]


@pytest.mark.parametrize(("option", "value"), NUMERIC)
@pytest.mark.parametrize("command", ["generate", "gates"])
def test_numeric_options(run_cli, tmp_path, command, option, value):
    if command == "gates" and option in ("--batch", "--images"):
        pytest.skip("generate only")
    out = tmp_path / "out"
    base = BASE if command == "generate" else ("gates", "--prompt", "a red cat", "--no-progress")
    assert_refused(run_cli(*base, "--out", out, option, value), USAGE, contains=option.lstrip("-"))
    assert not out.exists()


@pytest.mark.parametrize(("option", "value", "says"), [
    ("--scheduler", "nope", "scheduler"),
    ("--backend", "cuda", "backend"),
])
def test_unknown_enum_values(run_cli, tmp_path, option, value, says):
    assert_refused(run_cli(*BASE, "--out", tmp_path / "o", option, value), USAGE, contains=says)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "random"])
def test_prompts_file(run_cli, tmp_path, kind):
    path = bad_files(tmp_path / "bad")[kind]
    before = listing(tmp_path)
    assert_refused(run_cli("generate", "--prompts", path, "--out", tmp_path / "o", "--no-progress"), USAGE)
    assert listing(tmp_path) == before


def test_out_that_is_a_file_and_json_that_is_a_folder(run_cli, tmp_path):
    file = tmp_path / "file.txt"
    file.write_text("x")
    assert_refused(run_cli(*BASE, "--out", file), USAGE, contains="is a file")
    assert_refused(run_cli(*BASE, "--out", tmp_path / "o", "--json", tmp_path), USAGE, contains="is a directory")
    assert_refused(run_cli(*BASE, "--out", tmp_path / "o", "--json", file / "r.json"), USAGE, contains="not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_negative_prompt_without_guidance_is_refused(run_cli, tmp_path):
    assert_refused(run_cli(*BASE, "--out", tmp_path / "o", "--guidance", "1", "--negative-prompt", "blurry"), USAGE,
                   contains="negative prompt has no effect")
    assert not (tmp_path / "o").exists()


def test_gates_refuses_tensorrt_in_one_line(run_cli, tmp_path):
    assert_refused(run_cli("gates", "--prompt", "a cat", "--backend", "tensorrt", "--out", tmp_path / "o"), USAGE,
                   contains="--backend tensorrt")
    assert not (tmp_path / "o").exists()


def test_tensorrt_backend_without_a_gpu_is_one_line(run_cli, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert_refused(run_cli(*BASE, "--backend", "tensorrt", "--engine", tmp_path / "x.engine", "--out", tmp_path / "o"),
                   BACKEND, contains="needs a CUDA GPU")
    assert not (tmp_path / "o").exists()


def test_size_zero_is_not_replaced_by_the_default():
    from maskattn_trt.cli.generate_cmd import _settings
    from maskattn_trt.errors import BadInputError

    assert _settings("tiny-random", 2, 5.0, "euler", None, None).height == 64  # not given: the default
    with pytest.raises(BadInputError, match="height must be a positive multiple of 8"):
        _settings("tiny", 2, 5.0, "euler", 0, 64)


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e400", "NaN"])
def test_finite_float_refuses_non_finite_text(text):
    import click

    with pytest.raises(click.BadParameter, match="finite"):
        FiniteFloat(min=0).convert(text, None, None)
