"""Bad input is refused with one clear error before any work starts (nothing written to --out)."""

from __future__ import annotations

import json
import shutil

import pytest

from maskattn_trt.errors import BadInputError, CheckpointError
from maskattn_trt.sampling.generate import GateMapRequest, GenerateRequest, generate, make_gate_maps
from maskattn_trt.sampling.prompts import PromptEntry, read_prompts
from maskattn_trt.sampling.sampler import SampleSettings

PROMPT = (PromptEntry("a red cat"),)


def _generate(tmp_path, **kwargs):
    out = tmp_path / "out"
    kwargs.setdefault("settings", SampleSettings(steps=2, height=64, width=64))
    with pytest.raises((BadInputError, CheckpointError)) as info:
        generate(GenerateRequest(model="tiny-random", prompts=kwargs.pop("prompts", PROMPT), out=out, progress=False, **kwargs))
    assert not out.exists() or not any(out.iterdir()), "work started before the error"
    return str(info.value)


def test_unknown_scheduler():
    with pytest.raises(BadInputError, match="unknown scheduler 'heun'.*euler, euler_a, dpmpp_2m_karras, ddim, unipc"):
        SampleSettings(scheduler="heun")


@pytest.mark.parametrize("height", [60, 0, -8])
def test_height_not_multiple_of_8(height):
    with pytest.raises(BadInputError, match="height must be a positive multiple of 8"):
        SampleSettings(height=height)


def test_height_outside_export_profile(tmp_path, fp32_export):
    message = _generate(tmp_path, backend="onnxruntime", onnx=fp32_export.out_dir,
                        settings=SampleSettings(steps=2, height=256, width=64))
    assert "latent height 128 (256 px) is outside the exported range 16:32:64" in message


def test_batch_outside_export_profile(tmp_path, fp32_export):
    message = _generate(tmp_path, backend="onnxruntime", onnx=fp32_export.out_dir, batch=3,
                        prompts=PROMPT * 3)  # 3 images x2 for guidance = 6 > max 4
    assert "batch 6 is outside the exported range 1:2:4" in message and "x2 for guidance" in message


def test_empty_prompt_file(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("\n# only a comment\n\n")
    with pytest.raises(BadInputError, match="holds no prompt"):
        read_prompts(path)


def test_bad_jsonl_line(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "a cat", "seed": 1}\n{"prompt": "a dog", "sed": 2}\n')
    with pytest.raises(BadInputError, match=r"prompts.jsonl:2: unknown key\(s\) sed"):
        read_prompts(path)


def _tampered(export, tmp_path, file, key, value):
    copy = tmp_path / "export"
    shutil.copytree(export.out_dir, copy)  # the shared export stays untouched
    data = json.loads((copy / file).read_text())
    data[key] = value
    (copy / file).write_text(json.dumps(data))
    return copy


def test_onnx_for_another_model_io_spec(tmp_path, fp32_export):
    onnx = _tampered(fp32_export, tmp_path, "io_spec.json", "cross_attention_dim", 2048)
    message = _generate(tmp_path, backend="onnxruntime", onnx=onnx)
    assert "made for another model: its cross_attention_dim is 2048, this pipeline's is 64" in message


def test_onnx_for_another_model_fingerprint(tmp_path, fp32_export):
    onnx = _tampered(fp32_export, tmp_path, "manifest.json", "unet_fingerprint", "f" * 64)
    assert "another UNet architecture (fingerprint ffffffffffff" in _generate(tmp_path, backend="onnxruntime",
                                                                             onnx=onnx)


def test_onnx_with_other_gates(tmp_path, fp32_export, gates_checkpoint):
    onnx = _tampered(fp32_export, tmp_path, "manifest.json", "gates_hash", "0" * 64)
    message = _generate(tmp_path, backend="onnxruntime", onnx=onnx, gates=gates_checkpoint)
    assert "holds gates 000000000000" in message and "export / build again with these gates" in message


def test_missing_backend_artifacts(tmp_path):
    assert "--backend onnxruntime needs --onnx DIR" in _generate(tmp_path, backend="onnxruntime")
    assert "--backend tensorrt needs --engine PATH" in _generate(tmp_path, backend="tensorrt")


def test_gate_maps_need_gates(tmp_path):
    with pytest.raises(BadInputError, match="gate maps need gates: pass --gates"):
        make_gate_maps(GateMapRequest(model="tiny-random", prompt="a cat", out=tmp_path / "g", progress=False,
                                      settings=SampleSettings(steps=2, height=64, width=64)))


def test_gate_maps_steps_at_out_of_range(tmp_path, gates_checkpoint):
    with pytest.raises(BadInputError, match=r"--steps-at \[5\] outside 0..1"):
        make_gate_maps(GateMapRequest(model="tiny-random", prompt="a cat", out=tmp_path / "g", gates=gates_checkpoint, steps_at=(0, 5),
                                      settings=SampleSettings(steps=2, height=64, width=64), progress=False))
