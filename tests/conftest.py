"""Shared fixtures: tiny SDXL models built offline under fixed seeds (diffusers' get_dummy_components idea).

Expensive objects are built once per test session and shared by every test package. They are READ-ONLY:

- ``tiny_pipe``: the tiny SDXL pipeline, no gates;
- ``gated_unet``: the tiny UNet with trained-looking gates (``tests/helpers.py``), fp32;
- ``gates_checkpoint``: those gates saved as a .safetensors checkpoint;
- ``fp32_export`` / ``fp16_export``: ``maskattn-trt export --model tiny --gates <checkpoint> --gate-outputs
  --no-slim`` in fp32 / fp16 (library call, ``ExportResult``), batch 1..4, latent 16..64;
- ``fp32_engine`` / ``fp16_build``: TensorRT-RTX engines of those exports (skipped without TensorRT-RTX).

A test that changes one of them (installs gates, forces them open, edits files) takes a fresh copy instead:
``tiny_unet`` (function-scoped), ``helpers.gated_tiny_unet()``, ``copy.deepcopy`` or ``shutil.copytree``.
``gated_unet`` checks at the end of the session that nobody changed its gates.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

from maskattn_trt.export.from_model import ExportRequest, export_model
from maskattn_trt.gates import gate_processors, gates_hash, save_gates

from .helpers import gated_tiny_unet

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


HAS_CUDA = torch.cuda.is_available()
HAS_RTX = has_module("tensorrt_rtx_bindings")
HAS_TENSORRT = has_module("tensorrt")

requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU (none on this machine)")
requires_rtx = pytest.mark.skipif(not HAS_RTX, reason="TensorRT-RTX is not installed (pip install -e '.[rtx]')")
requires_tensorrt = pytest.mark.skipif(
    not HAS_TENSORRT, reason="standard tensorrt is not installed (its wheels need NVIDIA's index and a GPU machine)"
)


# ----------------------------------------------------------------------------------------- models


@pytest.fixture(scope="session")
def tiny_pipe():
    """The tiny SDXL pipeline (session-scoped: treat as read-only; do not install gates on its UNet)."""
    from maskattn_trt.models import tiny_sdxl_pipeline

    return tiny_sdxl_pipeline(seed=0)


@pytest.fixture
def tiny_unet():
    """A fresh tiny SDXL-shaped UNet (fp32, eval, seed 0) that a test may modify."""
    from maskattn_trt.models import build_unet

    return build_unet("tiny-random", seed=0)


@pytest.fixture(scope="session")
def gated_unet():
    """The tiny UNet (seed 0) with the shared trained-looking gates, fp32 (read-only; checked at teardown)."""
    unet = gated_tiny_unet()
    digest = gates_hash(unet)
    yield unet
    assert gates_hash(unet) == digest, "a test changed the shared gated_unet: take a copy instead"
    assert not any(p.force_open for p in gate_processors(unet).values()), "a test left the shared gates open"


@pytest.fixture(scope="session")
def gates_checkpoint(gated_unet, tmp_path_factory):
    """The shared gates as a .safetensors checkpoint (what `maskattn-trt train` writes)."""
    return save_gates(gated_unet, tmp_path_factory.mktemp("gates") / "gates.safetensors")


# ----------------------------------------------------------------------------------------- exports


def _export(checkpoint, folder, dtype):
    return export_model(ExportRequest(out=folder, model="tiny-random", gates=checkpoint, dtype=dtype, gate_outputs=True,
                                      batch="1:2:4", slim=False), progress=False)


@pytest.fixture(scope="session")
def fp32_export(gates_checkpoint, tmp_path_factory):
    """The shared gates exported in fp32 with gate outputs (``ExportResult``; read-only folder)."""
    return _export(gates_checkpoint, tmp_path_factory.mktemp("export") / "tiny_fp32", "fp32")


@pytest.fixture(scope="session")
def fp16_export(gates_checkpoint, tmp_path_factory):
    """The shared gates exported in fp16 (fp32 gate heads inside) with gate outputs (``ExportResult``)."""
    return _export(gates_checkpoint, tmp_path_factory.mktemp("export") / "tiny_fp16", "fp16")


# ----------------------------------------------------------------------------------------- engines


@pytest.fixture(scope="session")
def fp32_engine(fp32_export, tmp_path_factory):
    """Built through the CLI: TensorRT-RTX, SM89, the export's dynamic profile."""
    if not HAS_RTX:
        pytest.skip("TensorRT-RTX is not installed (pip install -e '.[rtx]')")
    from maskattn_trt.cli import main

    out = tmp_path_factory.mktemp("engines") / "tiny_fp32.engine"
    try:
        main(["build-engine", "--onnx", str(fp32_export.out_dir), "--out", str(out), "--builder", "tensorrt-rtx",
              "--compute-capability", "SM89"])
    except SystemExit as exc:
        pytest.fail(f"build-engine exited with {exc.code}")
    return out


@pytest.fixture(scope="session")
def fp16_build(fp16_export, tmp_path_factory):
    """Built through the library for SM86 from a pixel profile, capturing the layer information."""
    if not HAS_RTX:
        pytest.skip("TensorRT-RTX is not installed (pip install -e '.[rtx]')")
    import tensorrt_rtx_bindings as trt

    from maskattn_trt.engines.build import BuildOptions, build_engine
    from maskattn_trt.engines.inspect import capture_logger

    logger = capture_logger(trt)
    out = tmp_path_factory.mktemp("engines") / "tiny_fp16.engine"
    # pixels through the tiny VAE (scale 2): 64:96:128 x 64:128:128 px -> latent 32:48:64 x 32:64:64
    result = build_engine(BuildOptions(onnx=fp16_export.out_dir, out=out, builder="tensorrt-rtx", batch="1:1:2",
                                       height="64:96:128", width="64:128:128", compute_capabilities=("SM86",),
                                       progress=False), logger=logger)
    return result, logger.lines


# ----------------------------------------------------------------------------------------- misc


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def run_cli(capsys):
    """Run ``maskattn-trt ARGS`` in-process the way the console script does; returns (exit code, stdout, stderr)."""
    from maskattn_trt.cli import main

    def run(*args):
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
