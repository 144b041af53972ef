"""Demo stage: compile the exported tiny graph into a TensorRT-RTX engine ahead of time (no GPU needed)."""

from __future__ import annotations

from pathlib import Path

from ..engines.build import BuildOptions, build_engine
from ..engines.inspect import capture_logger, parse_layers, summarize
from ..utils.tensorrt import TENSORRT_RTX, is_installed, load_flavour

DEMO_TARGET = "SM89"


def demo_stage(state) -> list[str]:
    if state.onnx_dir is None:
        return ["skipped: no exported graph (the export stage did not run)"]
    if not is_installed(TENSORRT_RTX):
        return ["skipped: TensorRT-RTX is not installed (pip install -e '.[rtx]'); engines are built with it "
                "ahead of time on machines without a GPU"]
    logger = capture_logger(load_flavour(TENSORRT_RTX).trt)
    out = Path(state.out_dir) / "engines" / f"unet.{DEMO_TARGET.lower()}.engine"
    result = build_engine(BuildOptions(onnx=Path(state.onnx_dir), out=out, builder=TENSORRT_RTX,
                                       compute_capabilities=(DEMO_TARGET,), progress=False), logger=logger)
    state.engine_path = result.engine_path
    lines = [result.summary()]
    lines += summarize(parse_layers(logger.lines))
    lines.append("running it needs an RTX GPU (`maskattn-trt parity --engine ...` on the GPU machine)")
    return lines
