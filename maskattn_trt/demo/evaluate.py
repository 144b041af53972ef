"""Demo stage: a small `maskattn-trt evaluate` run: held-out scenes, gated vs gates open, scored by the checker."""

from __future__ import annotations

from ..evaluate import EvaluateRequest, evaluate, table
from ..sampling.sampler import SampleSettings


def demo_stage(state) -> list[str]:
    if state.gates_path is None:
        return ["skipped: no gates (the gates and train stages did not run)"]
    size = state.image_side
    count = 8 if state.quick else 24
    request = EvaluateRequest(
        out=state.out_dir / "evaluate", prompts="heldout", count=count, model=state.model,
        settings=SampleSettings(steps=10 if state.quick else 20, guidance=5.0, scheduler="euler", height=size,
                                width=size),
        backend="eager", gates=state.gates_path, batch=4, resamples=500, sheet_rows=count, force=True,
        progress=False)
    report = evaluate(request)
    return [f"{count} held-out scenes (colour-shape pairs and relations never seen in training), 1 seed each, "
            f"eager, {request.settings.steps} steps:", *table(report),
            f"contact sheet: {request.out / 'contact_sheet.png'}; full run: maskattn-trt evaluate --out out/eval"]
