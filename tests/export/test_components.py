"""Export of the text encoders and the VAE decoder: folders, IO specs, parity per component, wrong folders,
the fp16 VAE check. One export of each component per module (tiny pipeline, seconds)."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from maskattn_trt.artifacts import onnx_name, open_export, open_export_tree
from maskattn_trt.component_spec import (
    HIDDEN_STATES,
    IMAGE,
    TEXT_EMBEDS,
    TextEncoderIOSpec,
    VaeDecoderIOSpec,
    io_spec_from_dict,
    load_io_spec,
    resolve_engine_profile,
)
from maskattn_trt.errors import BadInputError, ExportError
from maskattn_trt.export.components import export_component
from maskattn_trt.export.from_model import ExportRequest, export_components
from maskattn_trt.parity.components import component_parity
from maskattn_trt.runners import EagerRunner, OrtRunner
from maskattn_trt.spec import Range

COMPONENTS = ("text_encoder", "text_encoder_2", "vae_decoder")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """An export tree holding the three non-UNet components (fp32, default ranges)."""
    root = tmp_path_factory.mktemp("components")
    for component in COMPONENTS:
        export_components(ExportRequest(model="tiny-random", out=root / component, component=component), progress=False)
    return root


def test_each_component_folder_records_what_it_holds(tree):
    for component in COMPONENTS:
        folder = tree / component
        assert (folder / onnx_name(component)).is_file()
        manifest = json.loads((folder / "manifest.json").read_text())
        spec = load_io_spec(folder / "io_spec.json")
        assert manifest["component"] == spec.component == component
        assert manifest["dtype"] == "fp32" and manifest["graph"]["nodes"] > 0
        assert set(manifest["graph"]["inputs"]) == set(spec.input_names)
        assert set(manifest["graph"]["outputs"]) == set(spec.output_names)
    assert open_export(tree / "text_encoder_2").io_spec.output_names == [TEXT_EMBEDS, HIDDEN_STATES]
    assert open_export(tree / "text_encoder").io_spec.output_names == [HIDDEN_STATES]
    vae = open_export(tree / "vae_decoder").io_spec
    assert vae.output_names == [IMAGE] and vae.vae_scale == 2 and vae.height == Range(16, 32, 64)
    assert set(open_export_tree(tree)) == set(COMPONENTS)


@pytest.mark.parametrize("component", COMPONENTS)
def test_component_parity_meets_the_stated_tolerances(tree, component):
    report = component_parity(open_export(tree / component), progress=False)
    assert report.passed, "\n".join(report.table())
    for case in report.cases:
        for name, stats in case.outputs.items():
            assert stats.finite
            if component == "vae_decoder":
                assert stats.max_abs <= 1e-3, (case.case, name, stats.max_abs)  # 0..1 image range
            else:
                assert stats.rel_l2 <= 1e-5, (case.case, name, stats.rel_l2)


def test_vae_graph_is_dynamic_in_batch_and_size_and_poisoned_outputs_are_written(tree, tiny_pipe):
    export = open_export(tree / "vae_decoder")
    spec = export.io_spec
    with OrtRunner(export, providers="cpu") as ort, EagerRunner(tiny_pipe.vae, spec) as eager:
        for batch, h, w in ((1, 16, 64), (3, 40, 24)):
            feed = spec.dummy_inputs(batch, h, w, seed=batch)
            out = ort.infer(feed)[IMAGE]
            assert out.shape == (batch, 3, 2 * h, 2 * w) and torch.isfinite(out).all()
            assert (out - eager.infer(feed)[IMAGE]).abs().max() <= 1e-3


def test_a_folder_of_another_component_is_refused_with_a_clear_message(tree):
    with pytest.raises(BadInputError, match="holds the vae_decoder export, not the unet"):
        open_export(tree / "vae_decoder", component="unet")
    with pytest.raises(BadInputError, match="export tree holding text_encoder"):
        open_export(tree)  # a tree is not one component folder
    with pytest.raises(BadInputError, match="not a maskattn-trt unet export|describes the text_encoder"):
        from maskattn_trt.spec import UNetIOSpec

        UNetIOSpec.load(tree / "text_encoder" / "io_spec.json")


def test_io_specs_round_trip_and_profiles(tree):
    for component in COMPONENTS:
        spec = load_io_spec(tree / component / "io_spec.json")
        assert io_spec_from_dict(spec.to_dict()) == spec
    text = load_io_spec(tree / "text_encoder_2" / "io_spec.json")
    assert resolve_engine_profile(text, batch="1:1:2").batch == Range(1, 1, 2)
    with pytest.raises(BadInputError, match="do not apply to the text_encoder_2"):
        resolve_engine_profile(text, height="64")
    vae = load_io_spec(tree / "vae_decoder" / "io_spec.json")
    profile = resolve_engine_profile(vae, height="64:64:96")
    assert profile.height == Range(32, 32, 48)
    assert vae.profile()["latent"] == ((1, 4, 16, 16), (2, 4, 32, 32), (4, 4, 64, 64))


def test_fp16_vae_is_checked_on_a_real_latent_and_an_overflowing_one_is_refused(tiny_pipe, tmp_path):
    result = export_components(ExportRequest(model="tiny-random", out=tmp_path / "vae16", component="vae_decoder", vae_dtype="fp16"),
                               progress=False)[0]
    check = result.manifest["fp16_decode_check"]
    assert check["finite"] and max(check["max_abs_vs_fp32"].values()) < 2e-2
    broken = copy.deepcopy(tiny_pipe.vae).half()
    with torch.no_grad():
        broken.decoder.conv_in.weight.mul_(1e3)  # activations past fp16's 65504 inside the decoder (as SDXL's)
        broken.decoder.conv_in.bias.fill_(6.5e4)
    spec = VaeDecoderIOSpec.for_vae(broken, dtype="fp16", batch=Range(1, 1, 1), height=Range(8, 16, 16),
                                    width=Range(8, 16, 16))
    with pytest.raises(ExportError, match="non-finite"):
        export_component(broken, tmp_path / "broken", spec, progress=False)
    assert not (tmp_path / "broken").exists()  # nothing left under the final name


def test_options_that_do_not_apply_to_a_component_are_refused(tmp_path):
    with pytest.raises(BadInputError, match="apply to the UNet"):
        export_components(ExportRequest(model="tiny-random", out=tmp_path / "x", component="text_encoder", open_gates=True))
    with pytest.raises(BadInputError, match="--vae-dtype"):
        export_components(ExportRequest(model="tiny-random", out=tmp_path / "x", component="vae_decoder", dtype="fp16"))
    with pytest.raises(BadInputError, match="--gates CHECKPOINT"):
        export_components(ExportRequest(model="tiny-random", out=tmp_path / "x", component="all"))
    with pytest.raises(BadInputError, match="text_encoder_2 must be a CLIPTextModelWithProjection"):
        from transformers import CLIPTextConfig, CLIPTextModel

        TextEncoderIOSpec.for_encoder("text_encoder_2", CLIPTextModel(CLIPTextConfig(hidden_size=8, intermediate_size=8,
                                                                                     num_hidden_layers=1,
                                                                                     num_attention_heads=2)))
    assert not (tmp_path / "x").exists()


def test_cli_exports_a_component_and_checks_its_parity(run_cli, tree, tmp_path):
    code, out, err = run_cli("export", "--model", "tiny-random", "--component", "text_encoder", "--batch", "1:1:2", "--out", tmp_path / "te")
    assert code == 0, err
    assert "text_encoder: input_ids -> hidden_states; batch 1:1:2" in out
    code, out, err = run_cli("parity", "--onnx", tree / "vae_decoder")
    assert code == 0, err
    assert "onnxruntime: image max abs <= 0.001" in out and "parity passed" in out
    code, _, err = run_cli("export", "--model", "tiny-random", "--component", "vae_decoder", "--dtype", "fp16", "--out", tmp_path / "v")
    assert code != 0 and "--vae-dtype" in err
