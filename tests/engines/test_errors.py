"""Bad input -> one clear error each, and no engine file left behind."""

from __future__ import annotations

import shutil

import pytest

from maskattn_trt.engines.build import BuildOptions, build_engine
from maskattn_trt.errors import BackendUnavailableError, BadInputError, EngineBuildError

from ..conftest import HAS_CUDA, HAS_TENSORRT, requires_rtx


def _engines(folder):
    return sorted(p.name for p in folder.rglob("*")
                  if p.is_file() and (p.suffix in (".engine", ".tmp") or p.name.endswith(".manifest.json")))


@requires_rtx
@pytest.mark.parametrize(
    ("changes", "error", "needle"),
    [
        ({"height": "128:256:1024"}, BadInputError, "outside the range the graph was exported for"),
        ({"width": "260:260:260"}, BadInputError, "not a multiple of 8"),
        ({"height": "384:256:512"}, BadInputError, "min <= opt <= max"),
        ({"batch": "1:2:8"}, BadInputError, "outside the exported batch range"),
        ({"compute_capabilities": ("SM91",)}, BadInputError, "unknown compute capability"),
        ({"timing_cache": "cache.bin"}, BadInputError, "no-op"),
        ({"opt_level": 9}, BadInputError, "--opt-level"),
    ],
)
def test_bad_build_options(fp32_export, tmp_path, changes, error, needle):
    if "timing_cache" in changes:
        changes = {"timing_cache": tmp_path / changes["timing_cache"]}
    options = BuildOptions(onnx=fp32_export.out_dir, out=tmp_path / "e.engine", builder="tensorrt-rtx", progress=False,
                           **changes)
    with pytest.raises(error, match=needle) as info:
        build_engine(options)
    assert "\n" not in str(info.value)
    assert _engines(tmp_path) == []


@requires_rtx
def test_corrupted_onnx_is_refused_without_an_engine(fp32_export, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(fp32_export.out_dir / "io_spec.json", broken / "io_spec.json")
    data = (fp32_export.out_dir / "unet.onnx").read_bytes()
    (broken / "unet.onnx").write_bytes(data[: len(data) // 3])
    with pytest.raises(EngineBuildError, match="not a readable ONNX model|could not parse"):
        build_engine(BuildOptions(onnx=broken, out=tmp_path / "out" / "e.engine", builder="tensorrt-rtx",
                                  progress=False))
    assert _engines(tmp_path / "out") == [] if (tmp_path / "out").exists() else True


@requires_rtx
def test_io_spec_of_another_export_is_refused(fp32_export, tmp_path):
    from maskattn_trt.spec import UNetIOSpec

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(fp32_export.out_dir / "unet.onnx", mixed / "unet.onnx")
    UNetIOSpec.load(fp32_export.out_dir / "io_spec.json").replace(gate_sites=(), gate_downsample={}).save(mixed / "io_spec.json")
    with pytest.raises(BadInputError, match="mixes files of two exports"):
        build_engine(BuildOptions(onnx=mixed, out=tmp_path / "e.engine", builder="tensorrt-rtx", progress=False))
    assert _engines(tmp_path) == []


@pytest.mark.skipif(HAS_TENSORRT, reason="standard tensorrt is installed here, so it is not missing")
def test_missing_builder_package_gives_an_install_hint(fp32_export, tmp_path):
    with pytest.raises(BackendUnavailableError, match=r"pip install .*\[gpu\].*--builder tensorrt-rtx"):
        build_engine(BuildOptions(onnx=fp32_export.out_dir, out=tmp_path / "e.engine", builder="tensorrt"))
    assert _engines(tmp_path) == []


@requires_rtx
@pytest.mark.skipif(HAS_CUDA, reason="a GPU is present: refittable RTX builds work there")
def test_refittable_rtx_build_without_gpu_says_why(fp32_export, tmp_path):
    with pytest.raises(BackendUnavailableError, match="refittable engines only on a machine with a CUDA GPU"):
        build_engine(BuildOptions(onnx=fp32_export.out_dir, out=tmp_path / "e.engine", builder="tensorrt-rtx",
                                  refittable=True))
    assert _engines(tmp_path) == []


@requires_rtx
def test_stale_manifest_is_refused_unless_forced(fp32_engine, fp16_export, tmp_path):
    from maskattn_trt.artifacts import EngineManifest, check_engine, engine_manifest_path, open_export

    manifest = EngineManifest.load(engine_manifest_path(fp32_engine))
    other = open_export(fp16_export.out_dir)
    with pytest.raises(EngineBuildError, match="refusing stale engine .*built from ONNX .*--force"):
        check_engine(fp32_engine, manifest, onnx_sha256=other.onnx_sha256())
    with pytest.raises(EngineBuildError, match="not these gates"):
        check_engine(fp32_engine, manifest, gates_hash="0" * 64)
    with pytest.raises(EngineBuildError, match="targets SM89, this GPU is SM120"):
        check_engine(fp32_engine, manifest, device_cc="SM120")
    problems = check_engine(fp32_engine, manifest, onnx_sha256=other.onnx_sha256(), force=True)
    assert len(problems) == 1
    assert check_engine(fp32_engine, manifest, onnx_sha256=manifest.onnx_sha256, gates_hash=manifest.gates_hash,
                        device_cc="SM89") == []
    # an engine swapped under its manifest is caught by the engine's own sha256
    swapped = tmp_path / fp32_engine.name
    swapped.write_bytes(fp32_engine.read_bytes()[:-16] + b"x" * 16)
    shutil.copy(engine_manifest_path(fp32_engine), engine_manifest_path(swapped))
    with pytest.raises(EngineBuildError, match="different builds"):
        check_engine(swapped, EngineManifest.load(engine_manifest_path(swapped)))
    (engine_manifest_path(swapped)).unlink()
    with pytest.raises(EngineBuildError, match="manifest .* is missing"):
        EngineManifest.load(engine_manifest_path(swapped))


@pytest.mark.skipif(HAS_CUDA, reason="a GPU is present")
def test_engine_runner_without_gpu_says_so(fp32_engine):
    from maskattn_trt.runners import TrtRunner

    with pytest.raises(BackendUnavailableError, match="needs a CUDA GPU"):
        with TrtRunner(fp32_engine):
            pass
