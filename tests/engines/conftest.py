"""Fixtures: tiny gated UNet exports (fp32, fp16) and TensorRT-RTX engines built once per session."""

from __future__ import annotations

import pytest
import torch

from maskattn_trt import GateConfig, install_gates
from maskattn_trt.gates import gate_parameters

from ..conftest import HAS_RTX


def gated_tiny_unet(seed: int = 0, dtype: torch.dtype = torch.float32, config: GateConfig | None = None):
    """The tiny UNet with gates whose every parameter is random (no LayerNorm left at ones/zeros)."""
    from maskattn_trt.models import build_unet

    unet = build_unet("tiny", seed=0).to(dtype)
    install_gates(unet, config or GateConfig())
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in gate_parameters(unet):
            scale = param.shape[-1] ** -0.5 * 2.0 if param.ndim == 2 else 0.3
            param.copy_(torch.randn(param.shape, generator=gen) * scale + (1.0 if param.ndim == 1 else 0.0))
    return unet


def export_tiny(unet, folder, dtype: str):
    """Export with the gate outputs (legacy exporter, as the export package does for tiny models)."""
    from maskattn_trt.gates import UNetGraph
    from maskattn_trt.spec import INPUT_NAMES, UNetIOSpec

    spec = UNetIOSpec.for_unet(unet, dtype=dtype).with_gate_outputs(list(unet._maskattn_installation.sites))
    feed = spec.dummy_inputs(2, 32, 32, seed=3)
    folder.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(UNetGraph(unet, spec).eval(), tuple(feed[n] for n in INPUT_NAMES), str(folder / "unet.onnx"),
                      dynamo=False, input_names=list(INPUT_NAMES), output_names=spec.output_names,
                      dynamic_axes=spec.dynamic_axes(), opset_version=17)
    spec.save(folder / "io_spec.json")
    return folder


@pytest.fixture(scope="session")
def fp32_unet():
    return gated_tiny_unet(seed=1)


@pytest.fixture(scope="session")
def fp32_export(fp32_unet, tmp_path_factory):
    return export_tiny(fp32_unet, tmp_path_factory.mktemp("export") / "tiny_fp32", "fp32")


@pytest.fixture(scope="session")
def fp16_export(tmp_path_factory):
    return export_tiny(gated_tiny_unet(seed=2, dtype=torch.float16), tmp_path_factory.mktemp("export") / "tiny_fp16",
                       "fp16")


@pytest.fixture(scope="session")
def fp32_engine(fp32_export, tmp_path_factory):
    """Built through the CLI: TensorRT-RTX, SM89, the export's dynamic profile."""
    if not HAS_RTX:
        pytest.skip("TensorRT-RTX is not installed (pip install -e '.[rtx]')")
    from maskattn_trt.cli import main

    out = tmp_path_factory.mktemp("engines") / "tiny_fp32.engine"
    try:
        main(["build-engine", "--onnx", str(fp32_export), "--out", str(out), "--builder", "tensorrt-rtx",
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
    result = build_engine(BuildOptions(onnx=fp16_export, out=out, builder="tensorrt-rtx", batch="1:1:2",
                                       height="256:384:512", width="256:512:512", compute_capabilities=("SM86",),
                                       progress=False), logger=logger)
    return result, logger.lines
