"""`maskattn-trt evaluate` end to end on the tiny model (random weights: the numbers mean nothing, the plumbing
does): eager gated vs gates-open, ONNX Runtime vs its gates-open export and against eager, outputs and refusals."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from maskattn_trt.evaluate import RESULT_FILE, SHEET_FILE
from maskattn_trt.export.from_model import ExportRequest, export_model

SMALL = ("--steps", "2", "--height", "64", "--width", "64", "--no-progress", "--resamples", "200")
METRICS = {"object_precision", "object_recall", "binding", "relation", "scene_accuracy", "colour_distance"}


@pytest.fixture(scope="module")
def open_export(tmp_path_factory):
    """The tiny model exported with every gate open (the stock-equivalent graph), fp32."""
    return export_model(ExportRequest(out=tmp_path_factory.mktemp("export") / "tiny_open", model="tiny-random",
                                      open_gates=True, batch="1:2:4", slim=False), progress=False)


def test_eager_gated_vs_open_json_on_stdout(run_cli, tmp_path, gates_checkpoint):
    out = tmp_path / "eval"
    code, stdout, stderr = run_cli("evaluate", "--model", "tiny-random", "--gates", gates_checkpoint, "--count", "3", "--seeds", "2",
                                   "--batch", "2", "--out", out, "--json", "-", *SMALL)
    assert code == 0, stderr
    report = json.loads(stdout)  # stdout holds only the JSON; the table went to stderr
    assert "gated - open" in stderr and "object_recall" in stderr
    assert report == json.loads((out / RESULT_FILE).read_text()) | {"written": report["written"]}
    assert report["units"] == 6 and len(report["images"]) == 6 and len(report["scenes"]) == 3
    assert [(i["scene"], i["seed"]) for i in report["images"]] == [(k, s) for k in range(3) for s in (0, 1)]
    assert set(report["conditions"]) == {"gated", "open"} and report["conditions"]["open"]["gates_forced_open"]
    assert METRICS <= set(report["summary"]["gated"]) and "gate_iou_colour" in report["summary"]["gated"]
    diff = report["comparisons"]["gated_vs_open"]["difference_a_minus_b"]
    assert METRICS <= set(diff) and report["bootstrap"]["resamples"] == 200
    verdict = report["images"][0]["verdicts"]["gated"]
    assert len(verdict["objects"]) == len(report["scenes"][0]["objects"]) and "alignment" in report["images"][0]
    assert set(report["versions"]) >= {"torch", "diffusers", "maskattn-trt"}
    sheet = Image.open(out / SHEET_FILE)
    assert sheet.size[0] >= 3 * 128 and sheet.size[1] > 6 * 128  # 6 rows x (gated, open, ground truth)
    # the gates act: the gated and open images of one seed differ somewhere
    assert any(report["images"][k]["verdicts"]["gated"] != report["images"][k]["verdicts"]["open"]
               for k in range(6)) or diff["colour_distance"]["value"] != 0.0


def test_onnxruntime_against_eager_and_open_export(run_cli, tmp_path, fp32_export, open_export, gates_checkpoint):
    out = tmp_path / "eval_ort"
    code, stdout, stderr = run_cli("evaluate", "--model", "tiny-random", "--backend", "onnxruntime", "--onnx", fp32_export.out_dir,
                                   "--open-onnx", open_export.out_dir, "--against", "eager", "--gates",
                                   gates_checkpoint, "--prompts", "two", "--count", "3", "--threads", "1",
                                   "--out", out, *SMALL)
    assert code == 0, stderr
    assert "gated - eager" in stdout and "verdict agreement gated / eager" in stdout
    report = json.loads((out / RESULT_FILE).read_text())
    assert {name: c["backend"] for name, c in report["conditions"].items()} == {
        "gated": "onnxruntime", "open": "onnxruntime", "eager": "eager"}
    assert report["conditions"]["open"]["gates_hash"] is None
    both = report["comparisons"]["gated_vs_eager"]
    # same gates, same seeds, fp32 on both backends: the same verdicts and (nearly) the same colours
    assert both["verdict_agreement"]["value"] == 1.0
    assert abs(both["difference_a_minus_b"]["colour_distance"]["value"]) < 0.02
    assert "gate_iou_shape" in report["summary"]["gated"]  # the export has gate outputs: alignment on ORT too


def test_refuses_to_overwrite_and_bad_requests_are_one_line(run_cli, tmp_path, gates_checkpoint):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    args = ("evaluate", "--model", "tiny-random", "--gates", gates_checkpoint, "--count", "1", "--sheet-rows", "1", *SMALL)
    code, _, stderr = run_cli(*args, "--out", foreign)
    assert code == 2 and stderr.strip().count("\n") == 0 and "--force" in stderr
    assert (foreign / "notes.txt").read_text() == "keep me"
    code, _, stderr = run_cli(*args, "--out", foreign, "--force", "--no-open")
    assert code == 0, stderr
    assert (foreign / RESULT_FILE).is_file() and not (foreign / "notes.txt").exists()
    code, _, stderr = run_cli(*args, "--out", foreign)  # a previous evaluation is replaced without --force
    assert code == 0, stderr
    for bad, expected in (
        (("evaluate", "--model", "tiny-random", "--count", "1", "--out", tmp_path / "a"), "needs gates"),
        (("evaluate", "--backend", "onnxruntime", "--onnx", tmp_path, "--out", tmp_path / "b"), "--open-onnx"),
        (("evaluate", "--no-open", "--height", "64", "--width", "128", "--out", tmp_path / "c"), "square"),
        (("evaluate", "--no-open", "--prompts", "nonsense", "--out", tmp_path / "d"), "heldout, two, single"),
        (("evaluate", "--no-open", "--against", "eager", "--out", tmp_path / "e"), "is the --backend itself"),
        (("evaluate", "--model", "tiny-random", "--backend", "onnxruntime", "--onnx", tmp_path, "--no-open", "--against", "eager", "--out",
          tmp_path / "f"), "--against eager needs --gates"),
    ):
        code, stdout, stderr = run_cli(*bad)
        assert code == 2 and stderr.startswith("error: ") and stderr.strip().count("\n") == 0, stderr
        assert expected in stderr and not stdout
    assert not any((tmp_path / n).exists() for n in "abcdef")


@pytest.mark.parametrize("option,value", [("--count", "0"), ("--seeds", "-1"), ("--resamples", "0"),
                                          ("--gate-threshold", "nan"), ("--gate-threshold", "1"),
                                          ("--sheet-rows", "-2"), ("--batch", "inf"), ("--against", "tpu")])
def test_bad_numbers_and_choices_are_usage_errors(run_cli, tmp_path, option, value):
    code, stdout, stderr = run_cli("evaluate", "--model", "tiny-random", "--no-open", option, value, "--out", tmp_path / "o")
    assert code == 2 and stderr.startswith("error: ") and stderr.strip().count("\n") == 0 and option in stderr
    assert not stdout and not (tmp_path / "o").exists()
