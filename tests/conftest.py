"""Shared fixtures: tiny SDXL models built offline under fixed seeds (diffusers' get_dummy_components idea)."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

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


@pytest.fixture(scope="session")
def tiny_pipe():
    """The tiny SDXL pipeline (session-scoped: treat as read-only; do not install gates on its UNet)."""
    from maskattn_trt.models import tiny_sdxl_pipeline

    return tiny_sdxl_pipeline(seed=0)


@pytest.fixture
def tiny_unet():
    """A fresh tiny SDXL-shaped UNet (fp32, eval, seed 0) that a test may modify."""
    from maskattn_trt.models import build_unet

    return build_unet("tiny", seed=0)


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
