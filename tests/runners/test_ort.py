"""The ONNX Runtime runner: the Runner contract, IO spec from the folder, providers, shape errors."""

from __future__ import annotations

import pytest
import torch

from maskattn_trt.errors import BackendUnavailableError, BadInputError, MaskAttnError
from maskattn_trt.runners import EagerRunner, OrtRunner, Runner
from maskattn_trt.spec import OUTPUT_NAME


def test_runner_contract_and_io_spec_from_folder(gated_unet, fp32_export):
    runner = OrtRunner(fp32_export.out_dir)
    assert isinstance(runner, Runner) and runner.spec == fp32_export.spec
    assert OrtRunner(fp32_export.onnx_path).spec == fp32_export.spec  # the .onnx file works too
    feed = fp32_export.spec.dummy_inputs(2, 32, 48, seed=5)
    with pytest.raises(MaskAttnError, match="not active"):
        runner.infer(feed)
    with runner, EagerRunner(gated_unet, fp32_export.spec) as eager:
        assert runner.providers == ["CPUExecutionProvider"] or "CUDAExecutionProvider" in runner.providers
        out, ref = runner.infer(feed), eager.infer(feed)
    assert list(out) == fp32_export.spec.output_names
    assert out[OUTPUT_NAME].shape == (2, 4, 32, 48)
    for name, value in out.items():  # outputs were NaN-poisoned before the run: every element was written
        assert torch.isfinite(value).all(), name
    rel = (out[OUTPUT_NAME] - ref[OUTPUT_NAME]).norm() / ref[OUTPUT_NAME].norm()
    assert rel <= 1e-5
    assert runner.session is None  # released on exit


def test_shape_outside_the_exported_range_is_refused(fp32_export):
    with OrtRunner(fp32_export.out_dir) as runner:
        with pytest.raises(BadInputError, match=r"latent height 80 \(160 px\) is outside the exported range 16:32:64"):
            runner.infer(fp32_export.spec.dummy_inputs(1, 80, 32, seed=1))
        with pytest.raises(BadInputError, match="batch 5 is outside"):
            runner.infer(fp32_export.spec.dummy_inputs(5, 32, 32, seed=1))
        with pytest.raises(BadInputError, match="multiple of 4"):
            runner.infer(fp32_export.spec.dummy_inputs(1, 30, 32, seed=1))
        feed = fp32_export.spec.dummy_inputs(1, 32, 32, seed=1)
        feed["encoder_hidden_states"] = feed["encoder_hidden_states"][:, :10]
        with pytest.raises(BadInputError, match="encoder_hidden_states has shape"):
            runner.infer(feed)
        del feed["time_ids"]
        with pytest.raises(BadInputError, match="lacks input"):
            runner.infer(feed)


def test_providers(fp32_export, tmp_path):
    with pytest.raises(BackendUnavailableError, match="not available here"):
        with OrtRunner(fp32_export.out_dir, providers=["tensorrt-that-does-not-exist"]):
            pass
    with OrtRunner(fp32_export.out_dir, providers="cpu", threads=1) as runner:
        assert runner.providers == ["CPUExecutionProvider"]
    with pytest.raises(BadInputError, match="no ONNX graph"):
        OrtRunner(tmp_path)
    (tmp_path / "unet.onnx").write_bytes(b"not a graph")
    with pytest.raises(BadInputError, match="IO spec"):
        OrtRunner(tmp_path)
    fp32_export.spec.save(tmp_path / "io_spec.json")
    with pytest.raises(MaskAttnError, match="could not load"):
        with OrtRunner(tmp_path):
            pass
