"""The ONNX Runtime runner: the Runner contract, IO spec from the folder, providers, shape errors."""

from __future__ import annotations

import pytest
import torch

from maskattn_trt.errors import BackendUnavailableError, BadInputError, MaskAttnError
from maskattn_trt.runners import EagerRunner, OrtRunner, Runner
from maskattn_trt.spec import OUTPUT_NAME

from ..export.helpers import export_tiny, gated_tiny, tiny_spec


@pytest.fixture(scope="module")
def unet():
    return gated_tiny(seed=3)


@pytest.fixture(scope="module")
def export(unet, tmp_path_factory):
    return export_tiny(unet, tmp_path_factory.mktemp("ort") / "tiny", tiny_spec(unet), slim=False)


def test_runner_contract_and_io_spec_from_folder(unet, export):
    runner = OrtRunner(export.out_dir)
    assert isinstance(runner, Runner) and runner.spec == export.spec
    assert OrtRunner(export.onnx_path).spec == export.spec  # the .onnx file works too
    feed = export.spec.dummy_inputs(2, 32, 48, seed=5)
    with pytest.raises(MaskAttnError, match="not active"):
        runner.infer(feed)
    with runner, EagerRunner(unet, export.spec) as eager:
        assert runner.providers == ["CPUExecutionProvider"] or "CUDAExecutionProvider" in runner.providers
        out, ref = runner.infer(feed), eager.infer(feed)
    assert list(out) == export.spec.output_names
    assert out[OUTPUT_NAME].shape == (2, 4, 32, 48)
    for name, value in out.items():  # outputs were NaN-poisoned before the run: every element was written
        assert torch.isfinite(value).all(), name
    rel = (out[OUTPUT_NAME] - ref[OUTPUT_NAME]).norm() / ref[OUTPUT_NAME].norm()
    assert rel <= 1e-5
    assert runner.session is None  # released on exit


def test_shape_outside_the_exported_range_is_refused(export):
    with OrtRunner(export.out_dir) as runner:
        with pytest.raises(BadInputError, match=r"latent height 80 \(160 px\) is outside the exported range 16:32:64"):
            runner.infer(export.spec.dummy_inputs(1, 80, 32, seed=1))
        with pytest.raises(BadInputError, match="batch 4 is outside"):
            runner.infer(export.spec.dummy_inputs(4, 32, 32, seed=1))
        with pytest.raises(BadInputError, match="multiple of 4"):
            runner.infer(export.spec.dummy_inputs(1, 30, 32, seed=1))
        feed = export.spec.dummy_inputs(1, 32, 32, seed=1)
        feed["encoder_hidden_states"] = feed["encoder_hidden_states"][:, :10]
        with pytest.raises(BadInputError, match="encoder_hidden_states has shape"):
            runner.infer(feed)
        del feed["time_ids"]
        with pytest.raises(BadInputError, match="lacks input"):
            runner.infer(feed)


def test_providers(export, tmp_path):
    with pytest.raises(BackendUnavailableError, match="not available here"):
        with OrtRunner(export.out_dir, providers=["tensorrt-that-does-not-exist"]):
            pass
    with OrtRunner(export.out_dir, providers="cpu", threads=1) as runner:
        assert runner.providers == ["CPUExecutionProvider"]
    with pytest.raises(BadInputError, match="no ONNX graph"):
        OrtRunner(tmp_path)
    (tmp_path / "unet.onnx").write_bytes(b"not a graph")
    with pytest.raises(BadInputError, match="IO spec"):
        OrtRunner(tmp_path)
    export.spec.save(tmp_path / "io_spec.json")
    with pytest.raises(MaskAttnError, match="could not load"):
        with OrtRunner(tmp_path):
            pass
