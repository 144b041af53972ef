"""`maskattn-trt generate` and `maskattn-trt gates` end to end on the tiny model (eager and ONNX Runtime)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

SMALL = ("--steps", "3", "--height", "64", "--width", "64", "--no-progress")


def test_generate_jsonl_eager(run_cli, tmp_path, gates_checkpoint):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "a red cat on a blue sofa", "seed": 42, "negative": "blurry"}\n'
                       '{"prompt": "a dog in the snow"}\n')
    out = tmp_path / "gen"
    code, stdout, stderr = run_cli("generate", "--model", "tiny-random", "--prompts", prompts, "--gates", gates_checkpoint, "--batch", "2",
                                   "--seed", "7", "--scheduler", "dpmpp_2m_karras", "--out", out, *SMALL)
    assert code == 0, stderr
    assert "wrote 2 image(s) with the eager backend" in stdout and "images/s" in stdout and "ms/step" in stdout
    first = json.loads((out / "0000_a_red_cat_on_a_blue_sofa_s42.json").read_text())
    second = json.loads((out / "0001_a_dog_in_the_snow_s8.json").read_text())  # no seed: --seed + index
    assert first["negative_prompt"] == "blurry" and second["negative_prompt"] is None
    assert first["scheduler"] == "dpmpp_2m_karras" and first["steps"] == 3 and first["backend"] == "eager"
    assert first["gates_hash"] and len(first["gate_checkpoint_sha256"]) == 64
    assert {"encode_s", "denoise_s", "denoise_step_ms", "decode_s"} <= set(first["timings"])
    image = np.asarray(Image.open(out / "0000_a_red_cat_on_a_blue_sofa_s42.png"))
    assert image.shape == (64, 64, 3) and image.std() > 1.0
    assert not list(out.glob(".*.tmp")), "temporary files left behind"


def test_generate_onnxruntime_and_truncation_warning(run_cli, tmp_path, fp32_export):
    long = "a red cat on a blue sofa " * 12 + "under a golden moon"
    code, stdout, stderr = run_cli("generate", "--model", "tiny-random", "--backend", "onnxruntime", "--onnx", fp32_export.out_dir, "--prompt", long,
                                   "--out", tmp_path / "gen", *SMALL)
    assert code == 0, stderr
    assert "with the onnxruntime backend" in stdout
    assert "truncated; cut words:" in stderr and "golden moon" in stderr
    sidecar = json.loads(next((tmp_path / "gen").glob("*.json")).read_text())
    assert sidecar["backend"] == "onnxruntime" and "golden moon" in sidecar["truncated_words"]


def test_generate_bad_input_is_one_line(run_cli, tmp_path):
    code, _, stderr = run_cli("generate", "--model", "tiny-random", "--prompt", "a cat", "--scheduler", "plms", "--out", tmp_path / "o")
    assert code == 2 and stderr.strip().count("\n") == 0 and "unknown scheduler 'plms'" in stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    code, _, stderr = run_cli("generate", "--model", "tiny-random", "--prompts", empty, "--out", tmp_path / "o")
    assert code == 2 and "holds no prompt" in stderr


def test_gates_command_eager_and_onnxruntime(run_cli, tmp_path, gates_checkpoint, fp32_export):
    fractions = {}
    for backend, extra in (("eager", ("--gates", gates_checkpoint)), ("onnxruntime", ("--onnx", fp32_export.out_dir))):
        out = tmp_path / backend
        code, stdout, stderr = run_cli("gates", "--model", "tiny-random", "--backend", backend, *extra, "--prompt", "a red cat on a blue sofa",
                                       "--steps-at", "0,2", "--json", out / "fractions.json", "--out", out, *SMALL)
        assert code == 0, stderr
        assert "open fraction per token" in stdout
        grid = Image.open(out / "0000_a_red_cat_on_a_blue_sofa_s0.gates.png")
        overlay = Image.open(out / "0000_a_red_cat_on_a_blue_sofa_s0.overlay.png")
        assert grid.size[0] > 300 and grid.size[1] > 300 and overlay.size[0] >= 128
        fractions[backend] = json.loads((out / "fractions.json").read_text())
    eager, ort = fractions["eager"], fractions["onnxruntime"]
    assert eager["tokens"][0] == "<start>" and eager["tokens"][-1] == "<end>" and "cat" in eager["tokens"]
    assert eager["steps"] == [0, 2] and len(eager["sites"]) == len(eager["per_token"][0]["sites"])
    for a, b in zip(eager["per_token"], ort["per_token"], strict=True):
        assert abs(a["mean"] - b["mean"]) <= 1e-3, (a["token"], a["mean"], b["mean"])
