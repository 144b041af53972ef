"""Bad input to the exporter library -> one clear error; nothing half-written under the output name."""

from __future__ import annotations

import pytest
import torch

from maskattn_trt import GateConfig, install_gates
from maskattn_trt.errors import BadInputError, ExportError
from maskattn_trt.export import export_unet
from maskattn_trt.models import build_unet

from ..helpers import tiny_spec


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.filterwarnings("ignore:Setting 'keep_initializers_as_inputs")
def test_failed_export_leaves_nothing_and_keeps_previous(tmp_path):
    unet = build_unet("tiny-random", seed=0)
    spec = tiny_spec(unet, gate_outputs=False)
    out = tmp_path / "export"
    out.mkdir()
    (out / "previous.txt").write_text("an earlier export")
    (out / "manifest.json").write_text('{"format": "maskattn-trt-export-v1"}')  # ours: export may replace it
    with pytest.raises(ExportError, match="failed"):
        export_unet(unet, out, spec, opset=6, progress=False)  # the exporter rejects this opset
    assert _leftovers(tmp_path) == ["export"]  # no temporary folder left behind
    assert _leftovers(out) == ["manifest.json", "previous.txt"]  # the previous export is untouched


def test_dtype_mismatch_is_refused(tmp_path):
    unet = build_unet("tiny-random", seed=0)
    with pytest.raises(BadInputError, match="cast_unet"):
        export_unet(unet, tmp_path / "x", tiny_spec(unet, dtype="fp16", gate_outputs=False), progress=False)
    unet.half()
    install_gates(unet, GateConfig())
    unet.half()  # gate heads in fp16 too: refused, they must stay fp32
    with pytest.raises(BadInputError, match="fp32"):
        export_unet(unet, tmp_path / "x", tiny_spec(unet, dtype="fp16", gate_outputs=False), progress=False)
    assert _leftovers(tmp_path) == []
    assert unet.conv_in.weight.dtype == torch.float16
