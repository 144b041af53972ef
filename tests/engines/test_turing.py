"""SM75 (Turing): TensorRT-RTX 1.7 has no fp32 GEMM there. fp16 exports with fp16 gate heads build; anything
with an fp32 matrix product is refused before the build, in one line naming the remedy."""

from __future__ import annotations

import pytest

from maskattn_trt.artifacts import EngineManifest, engine_manifest_path
from maskattn_trt.engines.build import BuildOptions, build_engine
from maskattn_trt.errors import BadInputError
from maskattn_trt.export import cast_unet

from ..conftest import requires_rtx
from ..helpers import export_tiny, gated_tiny_unet, tiny_spec

pytestmark = [requires_rtx, pytest.mark.rtx]


def _build(export, out, cc="SM75"):
    return build_engine(BuildOptions(onnx=export, out=out, builder="tensorrt-rtx", compute_capabilities=(cc,),
                                     progress=False))


def test_fp16_export_with_fp16_gate_heads_builds_for_sm75(tmp_path):
    unet = cast_unet(gated_tiny_unet(seed=2), "fp16", gate_heads="fp16")
    export = export_tiny(unet, tmp_path / "heads16", tiny_spec(unet, dtype="fp16"), gate_heads="fp16")
    result = _build(export.out_dir, tmp_path / "sm75.engine")
    manifest = EngineManifest.load(engine_manifest_path(result.engine_path))
    assert manifest.compute_capabilities == ["SM75"] and manifest.precision == "fp16"
    assert manifest.engine_bytes > 1_000_000


def test_fp32_gate_heads_and_fp32_exports_are_refused_for_sm75_with_the_remedy(fp16_export, fp32_export, tmp_path):
    with pytest.raises(BadInputError, match="SM75 \\(Turing\\) has no fp32 GEMM") as err:
        _build(fp16_export.out_dir, tmp_path / "a.engine")
    assert "its fp32 gate heads" in str(err.value) and "--gate-heads fp16" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(BadInputError, match="an fp32 export") as err:
        _build(fp32_export.out_dir, tmp_path / "b.engine")
    assert "--dtype fp16" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # refused before anything was written
