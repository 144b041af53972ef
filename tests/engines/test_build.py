"""TensorRT-RTX builds the tiny gated UNet ahead of time on this CPU-only machine (DESIGN decision 5)."""

from __future__ import annotations

import json

import pytest

from maskattn_trt.artifacts import EngineManifest, engine_manifest_path
from maskattn_trt.spec import UNetIOSpec
from maskattn_trt.utils.io import sha256_file

from ..conftest import requires_rtx

pytestmark = [requires_rtx, pytest.mark.rtx]


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_fp32_engine_for_sm89_with_the_exported_dynamic_profile(fp32_engine, fp32_export):
    manifest = EngineManifest.load(engine_manifest_path(fp32_engine))
    spec = UNetIOSpec.load(fp32_export.out_dir / "io_spec.json")
    assert manifest.engine_sha256 == sha256_file(fp32_engine)
    assert manifest.engine_bytes == fp32_engine.stat().st_size > 1_000_000
    assert manifest.onnx_sha256 == sha256_file(fp32_export.out_dir / "unet.onnx")
    assert manifest.builder == "tensorrt-rtx" and manifest.builder_version.startswith("1.")
    assert manifest.compute_capabilities == ["SM89"]
    assert manifest.precision == "fp32" and not manifest.refittable
    assert manifest.profile["batch"] == [spec.batch.min, spec.batch.opt, spec.batch.max]
    assert manifest.profile["latent_height"] == [spec.height.min, spec.height.opt, spec.height.max]
    assert not manifest.profile["static"]
    assert manifest.gates_hash and len(manifest.gates_hash) == 64
    assert manifest.spec().output_names == spec.output_names  # gate outputs kept
    assert _leftovers(fp32_engine.parent) == []  # atomic: no temporary files left behind


def test_fp16_engine_for_sm86_from_a_pixel_profile(fp16_build, fp32_engine):
    result, _ = fp16_build
    manifest = result.manifest
    assert manifest.compute_capabilities == ["SM86"] and manifest.precision == "fp16"
    # pixels -> latent through the tiny VAE (scale 2): 64:96:128 px -> 32:48:64
    assert manifest.profile["latent_height"] == [32, 48, 64]
    assert manifest.profile["latent_width"] == [32, 64, 64]
    assert manifest.profile["inputs"]["sample"][2] == [2, 4, 64, 64]
    # fp16 weights: the engine is clearly smaller than the fp32 one of the same UNet
    assert manifest.engine_bytes < 0.9 * EngineManifest.load(engine_manifest_path(fp32_engine)).engine_bytes
    assert manifest.build_seconds > 0 and "Building engine" in " ".join(result.phases)
    assert "SM86" in result.summary() and "timing cache: not used" in result.summary()


def test_gated_cross_attention_keeps_a_fused_attention_kernel(fp16_build, fp16_export):
    from maskattn_trt.engines.inspect import attention_fusion, parse_layers

    _, lines = fp16_build
    fusion = attention_fusion(parse_layers(lines))
    gated = UNetIOSpec.load(fp16_export.out_dir / "io_spec.json").gate_sites
    scopes = {"/unet/" + site.replace(".attentions", "/attentions").replace(".transformer_blocks",
                                                                            "/transformer_blocks").replace(".attn2", "/attn2")
              for site in gated}
    assert scopes <= set(fusion), sorted(set(fusion))[:3]
    for scope in scopes:
        assert fusion[scope]["fused"], (scope, fusion[scope])       # QK^T, Softmax, AV in one kernel
        assert fusion[scope]["mask_fused"], (scope, fusion[scope])  # and the gate's additive mask with them


def test_two_compute_capabilities_in_one_engine_and_manifest_written_last(fp32_export, tmp_path):
    """Also covers: a build failing for a later reason leaves nothing; this one succeeds for SM80+SM120."""
    from maskattn_trt.engines.build import BuildOptions, build_engine

    out = tmp_path / "multi.engine"
    result = build_engine(BuildOptions(onnx=fp32_export.out_dir, out=out, builder="tensorrt-rtx", static=True,
                                       compute_capabilities=("sm80", "SM120"), progress=False))
    data = json.loads(engine_manifest_path(out).read_text())
    assert data["compute_capabilities"] == ["SM80", "SM120"] and data["profile"]["static"]
    assert result.engine_path == out and sorted(p.name for p in tmp_path.iterdir()) == ["multi.engine",
                                                                                          "multi.manifest.json"]
