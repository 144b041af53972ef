"""Fixtures for the sampler tests: a gated tiny pipeline, its gate checkpoint and an ONNX export with gate outputs."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="package")
def gated(tmp_path_factory):
    """(pipeline, checkpoint path): the tiny pipeline (seed 0) with trained-looking random gates installed."""
    from maskattn_trt.gates import install_gates, randomize_gates, save_gates
    from maskattn_trt.models import tiny_sdxl_pipeline

    pipe = tiny_sdxl_pipeline(0)
    install_gates(pipe.unet)
    randomize_gates(pipe.unet, seed=0)
    path = save_gates(pipe.unet, tmp_path_factory.mktemp("gates") / "gates.safetensors")
    return pipe, path


@pytest.fixture(scope="package")
def export_dir(gated, tmp_path_factory):
    """The tiny gated UNet exported (fp32, gate outputs, 32..128 px) with the exporter library."""
    from maskattn_trt.export.from_model import ExportRequest, export_model

    _, gates_path = gated
    out = tmp_path_factory.mktemp("export") / "tiny"
    export_model(ExportRequest(out=out, model="tiny", gates=gates_path, gate_outputs=True, batch="1:2:4"),
                 progress=False)
    return out
