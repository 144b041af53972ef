"""Bad input to `train`, `build-engine`, `refit`, `parity`, `bench` and `demo`: numeric options at 0 / negative /
NaN / inf, unknown enum values, hostile recipe files and --out locations. One line, exit 2, nothing written."""

from __future__ import annotations

import pytest

from .catalogue import USAGE, assert_refused, bad_files, listing

TRAIN = ("train", "--no-progress")


@pytest.mark.parametrize("args", [
    ("--steps", "0"), ("--steps", "-5"), ("--steps", "nan"), ("--stop-after", "0"), ("--seed", "-1"),
    ("--precision", "fp8"), ("--data-format", "parquet"),
    ("--set", "optim.lr=inf"), ("--set", "optim.lr=nan"), ("--set", "optim.lr=-1"), ("--set", "optim.lr=0"),
    ("--set", 'train.steps="forty"'), ("--set", "train.batch_size=0"), ("--set", "optim.betas=[0.9]"),
    ("--set", "optim.grad_clip=inf"), ("--set", "checkpoint.keep=0"), ("--set", "nosuch.key=1"),
])
def test_train_options(run_cli, tmp_path, args):
    assert_refused(run_cli(*TRAIN, "--out", tmp_path / "run", *args), USAGE)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("kind", ["missing", "directory", "random"])  # an empty TOML file = all defaults
def test_train_hostile_recipe_files(run_cli, tmp_path, kind):
    recipe = bad_files(tmp_path / "bad")[kind]
    assert_refused(run_cli(*TRAIN, "--recipe", recipe, "--out", tmp_path / "run"), USAGE)
    assert not (tmp_path / "run").exists()


def test_train_out_locations(run_cli, tmp_path, monkeypatch):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.csv").write_text("1,2")
    assert_refused(run_cli(*TRAIN, "--out", foreign), USAGE, contains="not a training run")
    assert_refused(run_cli(*TRAIN, "--out", foreign, "--resume"), USAGE)
    assert_refused(run_cli(*TRAIN, "--out", tmp_path / "empty", "--resume"), USAGE, contains="holds no training run")
    monkeypatch.chdir(foreign)
    assert_refused(run_cli(*TRAIN, "--out", "."), USAGE, contains="current folder")
    assert listing(foreign) == ["data.csv"]
    assert not (tmp_path / "empty").exists()


@pytest.mark.parametrize("args", [
    ("--opt-level", "9"), ("--opt-level", "-1"), ("--workspace", "0"), ("--workspace", "nan"),
    ("--builder", "onnxruntime"),
])
def test_build_engine_options(run_cli, tmp_path, args):
    onnx = tmp_path / "export"
    onnx.mkdir()
    assert_refused(run_cli("build-engine", "--onnx", onnx, "--out", tmp_path / "e.engine", *args), USAGE)
    assert listing(tmp_path) == ["export"]


def test_build_engine_does_not_replace_a_foreign_file(run_cli, tmp_path):
    from ..conftest import HAS_RTX, HAS_TENSORRT

    if not (HAS_RTX or HAS_TENSORRT):
        pytest.skip("no TensorRT builder installed")
    onnx = tmp_path / "export"
    onnx.mkdir()
    precious = tmp_path / "model.engine"
    precious.write_bytes(b"someone else's engine")
    assert_refused(run_cli("build-engine", "--onnx", onnx, "--out", precious), USAGE, contains="not an engine built")
    assert precious.read_bytes() == b"someone else's engine"
    assert_refused(run_cli("build-engine", "--onnx", onnx, "--out", tmp_path / "e.txt"), USAGE, contains=".engine")


@pytest.mark.parametrize("args", [
    ("--repeats", "0"), ("--repeats", "-1"), ("--warmup", "-1"), ("--threads", "0"), ("--threads", "nan"),
    ("--shape", "0x32x32"), ("--shape", "2x32"), ("--shape", "axbxc"), ("--preset", "huge"), ("--seed", "-1"),
])
def test_bench_options(run_cli, tmp_path, args):
    assert_refused(run_cli("bench", "--json", tmp_path / "b.json", *args), USAGE)
    assert listing(tmp_path) == []


def test_bench_and_parity_json_under_a_file(run_cli, tmp_path):
    onnx = tmp_path / "export"
    onnx.mkdir()
    (onnx / "f").write_text("x")
    assert_refused(run_cli("bench", "--json", onnx / "f" / "b.json", "--repeats", "1"), USAGE, contains="not a folder")
    assert_refused(run_cli("parity", "--onnx", onnx, "--json", onnx / "f" / "p.json"), USAGE, contains="not a folder")
    assert_refused(run_cli("parity", "--onnx", tmp_path / "missing"), USAGE)
    assert listing(tmp_path) == ["export", "export/f"]


def test_demo_unknown_stage_and_foreign_out(run_cli, tmp_path):
    assert_refused(run_cli("demo", "--out", tmp_path / "d", "--only", "train", "--only", "nosuch"), USAGE,
                   contains="unknown demo stage")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("x")
    assert_refused(run_cli("demo", "--out", foreign), USAGE, contains="--force")
    assert listing(tmp_path) == ["foreign", "foreign/mine.txt"]


def test_refit_needs_gates(run_cli, tmp_path):
    engine = tmp_path / "e.engine"
    engine.write_bytes(b"x")
    assert_refused(run_cli("refit", "--engine", engine), USAGE, contains="--gates")
