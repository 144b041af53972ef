"""Standard TensorRT (GPU machine): timing-cache reuse and the same builder path (skipped where absent)."""

from __future__ import annotations

import pytest

from ..conftest import requires_cuda, requires_tensorrt

pytestmark = [requires_tensorrt, requires_cuda, pytest.mark.tensorrt, pytest.mark.gpu]


def test_second_build_reuses_the_timing_cache(fp16_export, tmp_path):
    from maskattn_trt.engines.build import BuildOptions, build_engine

    cache = tmp_path / "timing.cache"
    first = build_engine(BuildOptions(onnx=fp16_export.out_dir, out=tmp_path / "a.engine", builder="tensorrt",
                                      timing_cache=cache, progress=False))
    assert cache.stat().st_size > 0 and first.timing_cache.startswith("new")
    second = build_engine(BuildOptions(onnx=fp16_export.out_dir, out=tmp_path / "b.engine", builder="tensorrt",
                                       timing_cache=cache, progress=False))
    assert second.timing_cache.startswith("reused ") and " 0 entries" not in second.timing_cache
    assert second.manifest.builder == "tensorrt" and second.manifest.compute_capabilities
