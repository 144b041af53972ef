"""`maskattn-trt export` and `parity` as a user types them: bad input -> one clear line and a non-zero exit,
nothing half-written under the output name; a CLI export then parity on it."""

from __future__ import annotations

import json

import pytest
import torch

from maskattn_trt import GateConfig, install_gates, save_gates
from maskattn_trt.gates import gate_heads
from maskattn_trt.models import build_unet


@pytest.fixture(scope="module")
def foreign_gates(tmp_path_factory):
    unet = build_unet("small", seed=0)  # another UNet architecture
    install_gates(unet, GateConfig())
    return save_gates(unet, tmp_path_factory.mktemp("gates") / "small.safetensors")


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def _one_line_error(code, err, expected_code, *words):
    assert code == expected_code, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], lines[0]


def test_missing_checkpoint(run_cli, tmp_path):
    code, _, err = run_cli("export", "--gates", tmp_path / "nope.safetensors", "--out", tmp_path / "out")
    _one_line_error(code, err, 3, "does not exist")
    assert _leftovers(tmp_path) == []


def test_checkpoint_for_another_unet(run_cli, tmp_path, foreign_gates):
    code, _, err = run_cli("export", "--gates", foreign_gates, "--out", tmp_path / "out")
    _one_line_error(code, err, 3, "another UNet")
    assert _leftovers(tmp_path) == []


def test_unwritable_output_folder(run_cli, tmp_path, gates_checkpoint):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = run_cli("export", "--gates", gates_checkpoint, "--out", blocker / "out")
    _one_line_error(code, err, 2, "writable")
    code, _, err = run_cli("export", "--gates", gates_checkpoint, "--out", blocker)
    _one_line_error(code, err, 2, "not a folder")
    assert _leftovers(tmp_path) == ["file"]


@pytest.mark.parametrize("args, words", [
    (("--open-gates", "--height", "60:64:128"), "multiple of 8"),
    (("--open-gates", "--height", "big"), "MIN:OPT:MAX"),
    (("--open-gates", "--batch", "4:2:1"), "min <= opt <= max"),
    (("--open-gates", "--gate-outputs"), "needs gates"),
    (("--open-gates", "--gates", "x.safetensors"), "not both"),
    (("--model", "tiny-random"), "--open-gates"),  # the shipped tiny has default gates; tiny-random none
])
def test_bad_options(run_cli, tmp_path, args, words):
    code, _, err = run_cli("export", "--out", tmp_path / "out", *args)
    _one_line_error(code, err, 2, words)
    assert _leftovers(tmp_path) == []


def test_cli_export_then_parity_json(run_cli, tmp_path, gates_checkpoint):
    out = tmp_path / "tiny"
    code, stdout, err = run_cli("export", "--model", "tiny-random", "--gates", gates_checkpoint, "--out", out, "--gate-outputs",
                                "--height", "32:64:96", "--width", "32:64:128", "--batch", "1:1:2", "--no-slim")
    assert code == 0, err
    assert "IsNaN 0, gate sigmoids 0" in stdout
    spec = json.loads((out / "io_spec.json").read_text())
    assert spec["height"] == [16, 32, 48] and spec["width"] == [16, 32, 64] and spec["batch"] == [1, 1, 2]
    # (prompt feeds through the CLI are covered by the demo-stage test; here random feeds only, for speed)
    code, stdout, err = run_cli("parity", "--onnx", out, "--no-prompts", "--json", tmp_path / "parity.json")
    assert code == 0, stdout + err
    report = json.loads((tmp_path / "parity.json").read_text())
    assert report["passed"] and len(report["cases"]) == 4
    assert {c["shape"][0] for c in report["cases"]} == {1, 2}
    assert len({tuple(c["shape"][1:]) for c in report["cases"]}) == 2
    assert "parity passed" in stdout
    # Parity against other gates than the exported ones is refused, not silently compared.
    other = build_unet("tiny-random", seed=0)
    install_gates(other, GateConfig())
    with torch.no_grad():
        for head in gate_heads(other).values():
            head.logit_bias.fill_(3.0)  # same UNet and config, other gate weights
    save_gates(other, tmp_path / "other.safetensors")
    code, _, err = run_cli("parity", "--onnx", out, "--gates", tmp_path / "other.safetensors")
    _one_line_error(code, err, 2, "not the exported ones")
