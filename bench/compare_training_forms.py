"""Compare the gate training forms (DESIGN.md decision 2) on the tiny CPU recipe.

additive      the official form: (1 - G) * NEG added to the logits, straight-through gradient
renormalized  softmax(s) * G / sum(softmax(s) * G): same forward, non-zero gradient for closed gates

For each form and seed: the training-loss curve (mean per window of steps), the fixed-batch probe loss
(same images, noise and timesteps) before and after, the mean open fraction, and on a fixed probe input how
many (position, token) gates went closed -> open and open -> closed during training.

    python bench/compare_training_forms.py --steps 200 --seeds 0 1 2 --out runs/compare_forms
    python bench/compare_training_forms.py --steps 60 --window 20 --set gates.stage=\'all\' --set data.synthetic_samples=4 \
        --set optim.lr=1e-2 --out runs/compare_forms_overfit        # every site gated, 4 images, high LR
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from maskattn_trt.gates import recorded_gates, set_gate_recording
from maskattn_trt.models import tiny_sdxl_pipeline
from maskattn_trt.train.data import ImageCaptionDataset, collate, read_records
from maskattn_trt.train.loop import prepare_pipeline, train
from maskattn_trt.train.objective import GatedDenoiser, Objective
from maskattn_trt.train.recipe import load_recipe

RECIPE = Path(__file__).with_name("tiny_cpu.toml")


@torch.no_grad()
def probe_gates(pipe, cond) -> torch.Tensor:
    set_gate_recording(pipe.unet, True)
    t = torch.full((cond["latent_mean"].shape[0],), 500)
    GatedDenoiser(pipe.unet)(cond["latent_mean"] * 0.13025, t, cond["prompt_embeds"], cond["pooled"], cond["time_ids"])
    gates = torch.cat([g.flatten() for g in recorded_gates(pipe.unet).values()])
    set_gate_recording(pipe.unet, False)
    return gates


def run(form: str, seed: int, steps: int, out: Path, window: int, overrides: list[str]) -> dict:
    recipe = load_recipe(RECIPE, [f'train.out_dir="{out / f"{form}-{seed}"}"', f"train.steps={steps}",
                                  f"train.seed={seed}", f"gates.training_form='{form}'", "log.progress=false",
                                  "checkpoint.every=0", "log.every=10", "train.batch_size=4", *overrides])
    pipe = prepare_pipeline(recipe, tiny_sdxl_pipeline(seed), torch.device("cpu"))
    records, _ = read_records(recipe.data, Path(recipe.train.out_dir) / "synthetic")
    probe = collate([ImageCaptionDataset(records, recipe.data, seed)[(0, i)] for i in range(min(8, len(records)))])
    cond = Objective(pipe.scheduler.config).conditioning(pipe, probe, "cpu")
    before = probe_gates(pipe, cond)
    result = train(recipe, pipe=pipe)
    after = probe_gates(pipe, cond)
    losses = result.losses
    return {
        "form": form, "seed": seed, "seconds": round(result.seconds, 1),
        "loss_windows": [round(statistics.fmean(losses[i : i + window]), 5) for i in range(0, len(losses), window)],
        "probe_before": round(result.probe_loss[0], 6), "probe_after": round(result.probe_loss[1], 6),
        "open_before": round(before.mean().item(), 4), "open_after": round(after.mean().item(), 4),
        "reopened": round(((before == 0) & (after == 1)).float().sum().item() / max(1, (before == 0).sum().item()), 4),
        "closed": round(((before == 1) & (after == 0)).float().sum().item() / max(1, (before == 1).sum().item()), 4),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--window", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("runs/compare_forms"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="recipe override for both forms (repeatable)")
    args = parser.parse_args(argv)
    rows = []
    for seed in args.seeds:
        for form in ("additive", "renormalized"):
            rows.append(run(form, seed, args.steps, args.out, args.window, args.overrides))
            print(json.dumps(rows[-1]), flush=True)
    print("\nform          probe loss before -> after (mean over seeds)   open before -> after   reopened  closed")
    for form in ("additive", "renormalized"):
        mean = {key: statistics.fmean(r[key] for r in rows if r["form"] == form)
                for key in ("probe_before", "probe_after", "open_before", "open_after", "reopened", "closed")}
        print(f"{form:<13} {mean['probe_before']:.6f} -> {mean['probe_after']:.6f} "
              f"({mean['probe_after'] - mean['probe_before']:+.2e})        {mean['open_before']:.3f} -> "
              f"{mean['open_after']:.3f}        {mean['reopened']:.3f}     {mean['closed']:.3f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
