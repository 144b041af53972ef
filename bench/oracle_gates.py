"""Oracle gates on the shipped tiny model: would gates that knew where each object goes help binding?

The mask-supervised gates (`--gates shipped:mask`) follow the objects but open each colour / shape word on every
object of the scene, and cost binding (train/README.md). This script separates the two questions "does gating
help at all on this base?" and "is telling the objects apart the missing part?" by replacing the gate heads with
gates computed from the scene's ground truth, at the same sites (mid stage, 10 sites), in every denoising step:

    open       every gate open (the stock UNet)
    own        a colour / shape word open only on its own object (any overlap with the site's grid cell), every
               other token open: a perfect MaskAttn gate
    union      a colour / shape word open on every object of the scene (what the mask-supervised gates learned)
    isolated   a colour / shape word open only on its own object, every other token closed everywhere except
               the start token (constant whatever the caption): each place can read only its own object's words
    learned    the shipped mask-supervised gates (a check that this script agrees with `maskattn-trt evaluate`)

The unconditional half of classifier-free guidance keeps every gate open. Same scenes, seeds, sampler and scoring
as `maskattn-trt evaluate` (held-out split by default); differences are paired over the same images.

    python bench/oracle_gates.py --count 100 --steps 20 [--prompts two] [--stage all] [--json runs/oracle.json]
    python bench/oracle_gates.py --model runs/base4/model --conditions open,own,isolated   # a base before its gates

``--stage`` puts the oracle gates at another stage than the shipped gates' mid stage (``all``: every
cross-attention layer of the UNet).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from maskattn_trt.config import GateConfig
from maskattn_trt.evaluate import score
from maskattn_trt.evaluate.scenes import load_scenes
from maskattn_trt.evaluate.stats import bootstrap_paired_difference, bootstrap_ratio
from maskattn_trt.gates import gate_processors, install_gates, remove_gates, set_gates_open
from maskattn_trt.models import load_pipeline, shipped_gates
from maskattn_trt.sampling.backends import open_backend
from maskattn_trt.sampling.sampler import Sampler, SampleSettings
from maskattn_trt.world import render, token_targets

METRICS = ("object_recall", "object_precision", "binding", "relation", "scene_accuracy")
CONDITIONS = ("open", "own", "union", "isolated", "learned")
ORACLES = ("own", "union", "isolated")


def oracle_masks(scenes, tokenizer, side: int, mode: str) -> torch.Tensor:
    """[B, 77, side, side] float: object words' coverage (own object, or every object for ``union``); other
    tokens open everywhere (``isolated``: closed everywhere but the start token)."""
    out = []
    for scene in scenes:
        masks, object_tokens = token_targets(scene, tokenizer, side)
        if mode == "union" and object_tokens.any():
            masks[object_tokens] = masks[object_tokens].max(axis=0)
        if mode == "isolated":
            masks[1:][~object_tokens[1:]] = 0.0
        out.append(masks)
    return torch.from_numpy(np.stack(out))


def patch_gates(unet, holder: dict) -> None:
    """Replace every gate processor's gate by the oracle in ``holder["masks"]`` (cond half) / open (uncond half)."""
    for proc in gate_processors(unet).values():
        def gate(features, tokens, valid=None):
            masks = holder["masks"]  # [images, T, S, S]
            side = math.isqrt(features.shape[1])
            grid = F.adaptive_avg_pool2d(masks, side) if side < masks.shape[-1] else masks
            cond = (grid > 0).to(features.dtype).flatten(2).transpose(1, 2)  # [images, N, T]
            extra = features.shape[0] - cond.shape[0]  # the unconditional half comes first
            return torch.cat([torch.ones_like(cond[:1]).expand(extra, -1, -1), cond]) if extra else cond

        proc.__dict__["gate"] = gate


def run(args) -> dict:
    pipe = load_pipeline(args.model)
    shipped = args.model in ("tiny",)
    scenes = load_scenes(args.prompts, args.count, 0, 128)
    references = [np.asarray(render(s)) for s in scenes]
    settings = SampleSettings(steps=args.steps, guidance=args.guidance, height=128, width=128)
    side = 128 // pipe.vae_scale_factor
    counts: dict[str, dict[str, list]] = {}
    seconds = {}
    for name in args.conditions:
        if name == "learned" and not shipped:
            raise SystemExit(f"--conditions learned needs the shipped model's mask gates; --model is {args.model}")
        remove_gates(pipe.unet)
        gates = shipped_gates("tiny", "mask" if name == "learned" else "default") if shipped else None
        backend = open_backend(pipe, pipe.unet, "eager", gates_path=gates)
        if not shipped:
            install_gates(pipe.unet, GateConfig())
        holder: dict = {}
        if name in ORACLES:
            if args.stage != "mid":
                remove_gates(pipe.unet)
                install_gates(pipe.unet, GateConfig(stage=args.stage))
            patch_gates(pipe.unet, holder)
        set_gates_open(pipe.unet, name == "open")
        sampler = Sampler(pipe, backend.runner, settings)
        rows = {m: [] for m in METRICS}
        start = time.perf_counter()
        with backend.runner:
            for first in range(0, len(scenes), args.batch):
                group = scenes[first:first + args.batch]
                if name in ORACLES:
                    holder["masks"] = oracle_masks(group, pipe.tokenizer, side, name)
                conds = [sampler.encoder(s.caption) for s in group]
                images = sampler.decode(sampler.denoise(conds, [args.seed] * len(group)).latents)
                for scene, image, reference in zip(group, images, references[first:], strict=False):
                    verdict = score(image, scene, reference)
                    for m in METRICS:
                        rows[m].append(verdict.counts[m])
        seconds[name] = round(time.perf_counter() - start, 1)
        counts[name] = rows
        for proc in gate_processors(pipe.unet).values():
            proc.__dict__.pop("gate", None)
        print(f"{name}: {len(scenes)} images in {seconds[name]} s", file=sys.stderr)
    report = {"model": args.model, "prompts": args.prompts, "stage": args.stage, "count": args.count, "steps": args.steps, "guidance": args.guidance,
              "seed": args.seed, "seconds": seconds, "conditions": {}}
    for name in args.conditions:
        entry = {}
        for m in METRICS:
            num, den = np.array(counts[name][m], dtype=float).T
            est = bootstrap_ratio(num, den).to_dict()
            if name != "open" and "open" in counts:
                onum, oden = np.array(counts["open"][m], dtype=float).T
                est["minus_open"] = bootstrap_paired_difference(num, den, onum, oden).to_dict()
            entry[m] = est
        report["conditions"][name] = entry
    return report


def table(report: dict) -> str:
    def pct(e):
        v = e["value"]
        return "n/a" if v is None else f"{100 * v:.1f}"

    def diff(e):
        if e["value"] is None:
            return "n/a"
        lo, hi = e["ci95"]
        return f"{100 * e['value']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"

    lines = ["| gates | " + " | ".join(METRICS) + " | " + " | ".join(f"d {m}" for m in METRICS[:3]) + " |",
             "| --- " * (1 + len(METRICS) + 3) + "|"]
    for name, entry in report["conditions"].items():
        diffs = [diff(entry[m]["minus_open"]) if "minus_open" in entry[m] else "" for m in METRICS[:3]]
        lines.append(f"| {name} | " + " | ".join(pct(entry[m]) for m in METRICS) + " | " + " | ".join(diffs) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", default="heldout", help="world prompt set (heldout, two, three, single)")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stage", default="mid", choices=("high", "mid", "low", "all"),
                        help="where the oracle gates go (the shipped gates: mid)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--model", default="tiny", help="the shipped tiny model, or a train-base model folder")
    parser.add_argument("--conditions", default=",".join(CONDITIONS),
                        help="comma-separated subset of " + ", ".join(CONDITIONS) + " (learned: shipped model only)")
    parser.add_argument("--json", default=None, help="also write the report here")
    args = parser.parse_args()
    args.conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    unknown = sorted(set(args.conditions) - set(CONDITIONS))
    if unknown or not args.conditions:
        parser.error(f"--conditions: expected names from {', '.join(CONDITIONS)}; got {unknown or 'nothing'}")
    report = run(args)
    print(table(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
