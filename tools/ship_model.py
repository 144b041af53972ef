"""Assemble the shipped ``tiny`` model (maskattn_trt/models/weights/tiny/) from a train-base run and a gate run.

    python tools/ship_model.py --base runs/base/model --gates runs/tiny_gates/gates.safetensors \
        --gates-recipe train/tiny_gates.toml [--gates-metrics runs/tiny_gates/metrics.jsonl] [--force]

Copies the diffusers folder and the gate checkpoint, checks that the gates load onto the model's UNet, and writes
MANIFEST.json: sha256 and size of every file, the base run's record (recipe, steps, seeds, data version, times)
and the gate recipe. The folder is built beside the target and swapped in whole; an existing one is replaced
only with --force.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from diffusers import UNet2DConditionModel

from maskattn_trt.gates import gate_installation, load_gates
from maskattn_trt.train.base import MANIFEST_NAME
from maskattn_trt.train.recipe import load_recipe
from maskattn_trt.utils.io import atomic_dir, sha256_file, write_json_atomic

TARGET = Path(__file__).resolve().parents[1] / "maskattn_trt" / "models" / "weights" / "tiny"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="the model folder train-base wrote")
    parser.add_argument("--gates", type=Path, required=True, help="the gate checkpoint train wrote")
    parser.add_argument("--gates-recipe", type=Path, required=True)
    parser.add_argument("--gates-metrics", type=Path, default=None, help="metrics.jsonl of the gate run")
    parser.add_argument("--out", type=Path, default=TARGET)
    parser.add_argument("--force", action="store_true", help="replace an existing shipped model")
    args = parser.parse_args()
    if args.out.exists() and not args.force:
        print(f"error: {args.out} exists; pass --force to replace the shipped model", file=sys.stderr)
        return 2
    base_record = json.loads((args.base / MANIFEST_NAME).read_text())
    unet = UNet2DConditionModel.from_pretrained(args.base, subfolder="unet", local_files_only=True)
    load_gates(unet, args.gates)  # refuses gates made for another UNet
    config = gate_installation(unet).config
    recipe = load_recipe(args.gates_recipe)
    gate_record = {"recipe": recipe.to_dict(), "recipe_file": args.gates_recipe.name, "config": config.to_dict()}
    if args.gates_metrics and args.gates_metrics.is_file():
        rows = [json.loads(line) for line in args.gates_metrics.read_text().splitlines() if line.strip()]
        steps = [r for r in rows if "loss" in r]
        gate_record.update(steps=steps[-1].get("step") if steps else None,
                           seconds=rows[-1].get("elapsed_s") if rows else None)
    with atomic_dir(args.out) as tmp:
        shutil.copytree(args.base, tmp / "model")
        shutil.copy2(args.gates, tmp / "gates.safetensors")
        files = {str(p.relative_to(tmp)): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
                 for p in sorted(tmp.rglob("*")) if p.is_file()}
        write_json_atomic(tmp / "MANIFEST.json", {
            "format": "maskattn-trt-shipped-1", "name": "tiny", "files": files,
            "total_bytes": sum(f["bytes"] for f in files.values()), "base": {k: v for k, v in base_record.items()
                                                                             if k not in ("files", "total_bytes")},
            "gates": gate_record,
        })
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"shipped model written to {args.out} ({total / 2**20:.1f} MiB, {len(files)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
