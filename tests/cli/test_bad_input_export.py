"""Bad input to `export`, `gates-info` and `convert-gates`: numeric / enum options, hostile gate files
(missing, directory, empty, random bytes, truncated, one flipped byte, NaN weights) and --out locations
(a file, '.', a non-empty folder that is not an export, a read-only folder). One line, the documented exit
code, nothing written."""

from __future__ import annotations

import os

import pytest
import torch

from maskattn_trt.errors import NonFiniteError

from .catalogue import CHECKPOINT, USAGE, assert_refused, bad_files, flipped, listing, truncated

EXPORT = ("export", "--model", "tiny-random", "--no-progress", "--static", "--no-slim")


@pytest.fixture(scope="module")
def gates_file(tmp_path_factory):
    from maskattn_trt.gates import install_gates, randomize_gates, save_gates
    from maskattn_trt.models import build_unet

    unet = build_unet("tiny-random", seed=0)
    install_gates(unet)
    randomize_gates(unet, 0)
    return save_gates(unet, tmp_path_factory.mktemp("gates") / "gates.safetensors")


@pytest.mark.parametrize(("option", "value"), [
    ("--opset", "0"), ("--opset", "-1"), ("--opset", "nan"), ("--batch", "0"), ("--batch", "-1"),
    ("--batch", "4:2:1"), ("--batch", "nan"), ("--height", "0"), ("--height", "63"), ("--width", "inf"),
    ("--seed", "-1"), ("--exporter", "onnxscript"), ("--dtype", "bf16"),
])
def test_numeric_and_enum_options(run_cli, tmp_path, option, value):
    assert_refused(run_cli(*EXPORT, "--open-gates", "--out", tmp_path / "o", option, value), USAGE)
    assert listing(tmp_path) == []


def test_dynamo_below_opset_18_is_refused_up_front(run_cli, tmp_path):
    assert_refused(run_cli(*EXPORT, "--open-gates", "--out", tmp_path / "o", "--exporter", "dynamo", "--opset", "17"),
                   USAGE, contains="--opset 18")
    assert listing(tmp_path) == []


@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "random", "truncated", "flipped"])
def test_hostile_gate_files(run_cli, tmp_path, gates_file, kind):
    files = bad_files(tmp_path / "bad")
    files["truncated"] = truncated(gates_file, tmp_path / "bad" / "t.safetensors")
    files["flipped"] = flipped(gates_file, tmp_path / "bad" / "f.safetensors")
    code = USAGE if kind == "directory" else CHECKPOINT  # click refuses a directory for a file option
    assert_refused(run_cli(*EXPORT, "--gates", files[kind], "--out", tmp_path / "o"), code)
    assert not (tmp_path / "o").exists()
    if kind not in ("missing", "directory"):
        assert_refused(run_cli("gates-info", files[kind]), CHECKPOINT)


def test_nan_gates_are_refused_by_save_load_and_export(tmp_path, gates_file):
    from maskattn_trt.export.onnx import export_unet
    from maskattn_trt.gates import gate_heads, load_gates, save_gates
    from maskattn_trt.models import build_unet
    from maskattn_trt.spec import UNetIOSpec

    unet = build_unet("tiny-random", seed=0)
    load_gates(unet, gates_file)
    with torch.no_grad():
        next(iter(gate_heads(unet).values())).token_net[1].weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="NaN or infinity"):
        save_gates(unet, tmp_path / "nan.safetensors")
    assert not (tmp_path / "nan.safetensors").exists()
    with pytest.raises(NonFiniteError, match="NaN or infinity"):
        export_unet(unet, tmp_path / "onnx", UNetIOSpec.for_unet(unet, vae_scale=2), progress=False)
    assert listing(tmp_path) == []


def test_nan_gates_file_is_refused_by_load(tmp_path, gates_file):
    """A checkpoint whose metadata hash matches NaN tensors (written by another tool) is still refused."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from maskattn_trt.gates import checkpoint as gc
    from maskattn_trt.gates import load_gates
    from maskattn_trt.models import build_unet

    tensors = load_file(str(gates_file))
    first = sorted(tensors)[0]
    tensors[first] = torch.full_like(tensors[first], float("nan"))
    with safe_open(str(gates_file), framework="pt") as handle:
        meta = json.loads(handle.metadata()[gc._META_KEY])
    meta["content_sha256"] = gc._content_hash(tensors)
    save_file(tensors, str(tmp_path / "nan.safetensors"), metadata={gc._META_KEY: json.dumps(meta)})
    with pytest.raises(Exception, match="NaN or infinity"):
        load_gates(build_unet("tiny-random", seed=0), tmp_path / "nan.safetensors")


def test_out_locations(run_cli, tmp_path, monkeypatch):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    assert_refused(run_cli(*EXPORT, "--open-gates", "--out", foreign), USAGE, contains="--force")
    assert listing(foreign) == ["thesis.tex"]
    file = tmp_path / "file"
    file.write_text("x")
    assert_refused(run_cli(*EXPORT, "--open-gates", "--out", file), USAGE)
    monkeypatch.chdir(foreign)
    assert_refused(run_cli(*EXPORT, "--open-gates", "--out", "."), USAGE, contains="current folder")
    assert_refused(run_cli(*EXPORT, "--open-gates", "--out", "..", "--force"), USAGE, contains="current folder")
    assert listing(foreign) == ["thesis.tex"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_location(run_cli, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert_refused(run_cli(*EXPORT, "--open-gates", "--out", locked / "o"), USAGE, contains="not writable")


@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "random"])
def test_convert_gates_hostile_sources(run_cli, tmp_path, kind):
    source = bad_files(tmp_path / "bad")[kind]
    code = USAGE if kind == "directory" else CHECKPOINT
    line = assert_refused(run_cli("convert-gates", source, tmp_path / "g.safetensors", "--model", "tiny-random"), code)
    assert "weights_only=False" not in line and "can still be loaded" not in line
    assert not (tmp_path / "g.safetensors").exists()


def test_convert_gates_does_not_create_parent_folders(run_cli, tmp_path):
    source = tmp_path / "gate_final.pt"
    source.write_bytes(b"x")
    assert_refused(run_cli("convert-gates", source, tmp_path / "no" / "such" / "g.safetensors"), USAGE,
                   contains="does not exist")
    assert not (tmp_path / "no").exists()
