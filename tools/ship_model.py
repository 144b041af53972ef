"""Assemble the shipped ``tiny`` model (maskattn_trt/models/weights/tiny/) from a train-base run and a gate run.

    python tools/ship_model.py --base runs/base/model --gates runs/tiny_gates/gates.safetensors \
        --gates-recipe train/tiny_gates.toml [--gates-metrics runs/tiny_gates/metrics.jsonl] \
        [--mask-gates runs/tiny_gates_mask/gates.safetensors --mask-gates-recipe train/tiny_gates_mask.toml \
         --mask-gates-metrics runs/tiny_gates_mask/metrics.jsonl] [--force]

Copies the diffusers folder and the gate checkpoint(s), checks that the gates load onto the model's UNet, and writes
MANIFEST.json: sha256 and size of every file, the base run's record (recipe, steps, seeds, data version, times)
and each gate set's recipe (``gates``: the default set; ``gate_sets``: the others, e.g. ``mask``). The folder is built beside the target and swapped in whole; an existing one is replaced
only with --force.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from diffusers import UNet2DConditionModel

from maskattn_trt.gates import gate_installation, load_gates, remove_gates
from maskattn_trt.models.shipped import GATE_SETS
from maskattn_trt.train.base import MANIFEST_NAME
from maskattn_trt.train.recipe import load_recipe
from maskattn_trt.utils.io import atomic_dir, sha256_file, write_json_atomic

TARGET = Path(__file__).resolve().parents[1] / "maskattn_trt" / "models" / "weights" / "tiny"


def _gate_record(unet, gates: Path, recipe_path: Path, metrics: Path | None) -> dict:
    """What the manifest says about one gate set; loading it first refuses gates made for another UNet."""
    remove_gates(unet)  # gate sets may differ in config (head width)
    load_gates(unet, gates)
    record = {"recipe": load_recipe(recipe_path).to_dict(), "recipe_file": recipe_path.name,
              "config": gate_installation(unet).config.to_dict()}
    if metrics and metrics.is_file():
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        steps = [r for r in rows if "loss" in r]
        record.update(steps=steps[-1].get("step") if steps else None,
                      seconds=rows[-1].get("elapsed_s") if rows else None)
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="the model folder train-base wrote")
    parser.add_argument("--gates", type=Path, required=True, help="the gate checkpoint train wrote")
    parser.add_argument("--gates-recipe", type=Path, required=True)
    parser.add_argument("--gates-metrics", type=Path, default=None, help="metrics.jsonl of the gate run")
    parser.add_argument("--mask-gates", type=Path, default=None, help="the mask-supervised gate checkpoint")
    parser.add_argument("--mask-gates-recipe", type=Path, default=None)
    parser.add_argument("--mask-gates-metrics", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=TARGET)
    parser.add_argument("--force", action="store_true", help="replace an existing shipped model")
    args = parser.parse_args()
    if args.out.exists() and not args.force:
        print(f"error: {args.out} exists; pass --force to replace the shipped model", file=sys.stderr)
        return 2
    if args.mask_gates is not None and args.mask_gates_recipe is None:
        print("error: --mask-gates needs --mask-gates-recipe (the recipe it was trained with)", file=sys.stderr)
        return 2
    base_record = json.loads((args.base / MANIFEST_NAME).read_text())
    unet = UNet2DConditionModel.from_pretrained(args.base, subfolder="unet", local_files_only=True)
    gate_record = _gate_record(unet, args.gates, args.gates_recipe, args.gates_metrics)
    sets = {}
    if args.mask_gates is not None:
        sets["mask"] = dict(_gate_record(unet, args.mask_gates, args.mask_gates_recipe, args.mask_gates_metrics),
                            file=GATE_SETS["mask"])
    with atomic_dir(args.out) as tmp:
        shutil.copytree(args.base, tmp / "model")
        shutil.copy2(args.gates, tmp / GATE_SETS["default"])
        if args.mask_gates is not None:
            shutil.copy2(args.mask_gates, tmp / GATE_SETS["mask"])
        files = {str(p.relative_to(tmp)): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
                 for p in sorted(tmp.rglob("*")) if p.is_file()}
        write_json_atomic(tmp / "MANIFEST.json", {
            "format": "maskattn-trt-shipped-1", "name": "tiny", "files": files,
            "total_bytes": sum(f["bytes"] for f in files.values()), "base": {k: v for k, v in base_record.items()
                                                                             if k not in ("files", "total_bytes")},
            "gates": gate_record, **({"gate_sets": sets} if sets else {}),
        })
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"shipped model written to {args.out} ({total / 2**20:.1f} MiB, {len(files)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
