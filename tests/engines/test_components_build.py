"""TensorRT-RTX builds the text encoders and the VAE decoder ahead of time (SM89, no GPU): one engine per
component of an export tree, each with a manifest that records its component; wrong folders are refused."""

from __future__ import annotations

import pytest

from maskattn_trt.artifacts import engine_name, open_engine_tree
from maskattn_trt.engines.build import BuildOptions, build_engine, build_engines, is_export_tree
from maskattn_trt.errors import BackendUnavailableError, BadInputError
from maskattn_trt.export.from_model import ExportRequest, export_components
from maskattn_trt.sampling.backends import _unet_of, load_model, open_backend
from maskattn_trt.utils.io import sha256_file

from ..conftest import HAS_CUDA, requires_rtx

pytestmark = [requires_rtx, pytest.mark.rtx]
COMPONENTS = ("text_encoder", "text_encoder_2", "vae_decoder")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("rtx_components") / "tree"
    root.mkdir()
    for component in COMPONENTS:
        export_components(ExportRequest(model="tiny-random", out=root / component, component=component), progress=False)
    return root


@pytest.fixture(scope="module")
def engines(tree, tmp_path_factory):
    folder = tmp_path_factory.mktemp("rtx_engines") / "tiny"
    results = build_engines(BuildOptions(onnx=tree, out=folder, builder="tensorrt-rtx", progress=False))
    return folder, results


def test_every_component_of_a_tree_is_built_with_its_manifest(tree, engines):
    folder, results = engines
    assert is_export_tree(tree) and not is_export_tree(tree / "vae_decoder")
    assert [r.engine_path.name for r in results] == [engine_name(c) for c in COMPONENTS]
    found = open_engine_tree(folder)
    assert set(found) == set(COMPONENTS)
    for component, artifact in found.items():
        m = artifact.manifest
        assert artifact.component == component and m.builder == "tensorrt-rtx"
        assert m.compute_capabilities == ["SM89"] and m.precision == "fp32" and m.gates_hash is None
        assert m.engine_sha256 == sha256_file(artifact.engine_path) and m.engine_bytes > 100_000
        assert m.onnx_sha256 == sha256_file(tree / component / f"{component}.onnx")
    assert found["vae_decoder"].manifest.profile["pixel_height"] == [32, 64, 128]
    assert found["text_encoder_2"].io_spec.output_names == ["text_embeds", "hidden_states"]
    assert found["text_encoder"].manifest.profile["inputs"]["input_ids"] == [[1, 77], [2, 77], [4, 77]]


def test_component_profiles_and_options_are_checked(tree, tmp_path):
    result = build_engine(BuildOptions(onnx=tree / "vae_decoder", out=tmp_path / "vae.engine", builder="tensorrt-rtx",
                                       batch="1:1:1", height="64", width="32:64:64", progress=False))
    assert result.manifest.profile["batch"] == [1, 1, 1] and result.manifest.profile["pixel_width"] == [32, 64, 64]
    with pytest.raises(BadInputError, match="do not apply to the text_encoder"):
        build_engine(BuildOptions(onnx=tree / "text_encoder", out=tmp_path / "te.engine", builder="tensorrt-rtx",
                                  height="64", progress=False))
    with pytest.raises(BadInputError, match="must be a folder"):
        build_engines(BuildOptions(onnx=tree, out=tmp_path / "x.engine", builder="tensorrt-rtx", progress=False))
    assert not (tmp_path / "te.engine").exists()


def test_an_engine_folder_without_a_unet_is_refused_by_generate(engines):
    folder, _ = engines
    # generate checks for a GPU first (without one nothing can run an engine), then the folder's components
    with pytest.raises(BadInputError, match="not a UNet"):
        _unet_of(open_engine_tree(folder), folder)
    if HAS_CUDA:
        pipe, unet = load_model("tiny-random", "tensorrt")
        with pytest.raises(BadInputError, match="not a UNet"):
            open_backend(pipe, unet, "tensorrt", model="tiny-random", engine=folder)


@pytest.mark.skipif(HAS_CUDA, reason="checks the CPU-only refusal")
def test_component_engines_refuse_to_run_without_a_gpu(engines):
    from maskattn_trt.runners import TrtRunner

    folder, _ = engines
    with pytest.raises(BackendUnavailableError, match="needs a CUDA GPU"):
        with TrtRunner(open_engine_tree(folder)["vae_decoder"]):
            pass
