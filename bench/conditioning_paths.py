"""Which text path does the shipped tiny model draw from: the cross-attention tokens or the pooled embedding?

SDXL conditions its UNet twice: the per-token embeddings through cross-attention (what MaskAttn gates) and the
pooled text embedding of the second encoder, added to the time embedding (a global path no gate touches). This
script draws the same prompts and seeds with one of the two paths given "no text" instead: zeros, what the tiny base saw
for its 10 % dropped captions and what guidance uses as the unconditional input (``force_zeros_for_empty_prompt``):

    both         the prompt through both paths (as the pipeline does)
    tokens only  cross-attention tokens of the prompt, pooled embedding zero
    pooled only  pooled embedding of the prompt, cross-attention tokens zero

and scores them with the world checker. If "pooled only" draws about as well as "both", the model binds colour
and shape through the global path, and gates on cross-attention cannot change much (bench/oracle_gates.py).

    python bench/conditioning_paths.py --prompts single --count 19 --seeds 10 --steps 20
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np

from maskattn_trt.evaluate import score
from maskattn_trt.evaluate.scenes import load_scenes
from maskattn_trt.evaluate.stats import bootstrap_ratio
from maskattn_trt.models import load_pipeline
from maskattn_trt.sampling.backends import open_backend
from maskattn_trt.sampling.sampler import Sampler, SampleSettings
from maskattn_trt.world import render

METRICS = ("object_recall", "binding", "relation")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", default="single")
    parser.add_argument("--count", type=int, default=19)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    pipe = load_pipeline("tiny")
    backend = open_backend(pipe, pipe.unet, "eager")  # the stock UNet: no gates
    sampler = Sampler(pipe, backend.runner, SampleSettings(steps=args.steps, guidance=args.guidance, height=128,
                                                           width=128))
    scenes = load_scenes(args.prompts, args.count, 0, 128)
    units = [(scene, seed) for scene in scenes for seed in range(args.seeds)]
    variants = {  # negative_* are zeros: no negative prompt, force_zeros_for_empty_prompt
        "both": lambda c: c,
        "tokens only": lambda c: dataclasses.replace(c, pooled=c.negative_pooled),
        "pooled only": lambda c: dataclasses.replace(c, embeds=c.negative_embeds),
    }
    print(f"| text path | {' | '.join(METRICS)} |\n| --- |{' --- |' * len(METRICS)}")
    with backend.runner:
        for name, change in variants.items():
            rows = {m: [] for m in METRICS}
            for first in range(0, len(units), args.batch):
                group = units[first:first + args.batch]
                conds = [change(sampler.encoder(scene.caption)) for scene, _ in group]
                images = sampler.decode(sampler.denoise(conds, [seed for _, seed in group]).latents)
                for (scene, _), image in zip(group, images, strict=True):
                    counts = score(image, scene, np.asarray(render(scene))).counts
                    for m in METRICS:
                        rows[m].append(counts[m])
            cells = []
            for m in METRICS:
                num, den = np.array(rows[m], dtype=float).T
                cells.append(bootstrap_ratio(num, den).text())
            print(f"| {name} | {' | '.join(cells)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
