"""The sampler tests' pipeline: the tiny pipeline with the shared gates (tests/conftest.py) loaded."""

from __future__ import annotations

import pytest

from maskattn_trt.gates import load_gates
from maskattn_trt.models import tiny_sdxl_pipeline


@pytest.fixture(scope="package")
def gated_pipe(gates_checkpoint):
    """The tiny pipeline (seed 0) with the gates of ``gates_checkpoint``, i.e. those of ``fp32_export``.

    Package-scoped: test_parity.py forces its gates open for one module and closes them again.
    """
    pipe = tiny_sdxl_pipeline(0)
    load_gates(pipe.unet, gates_checkpoint)
    return pipe
