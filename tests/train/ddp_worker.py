"""Run by torchrun in tests/train/test_ddp.py: train the tiny recipe on this rank, record the gate hash."""

import sys
from pathlib import Path

import torch

from maskattn_trt.gates import gates_hash, install_gates
from maskattn_trt.models import tiny_sdxl_pipeline
from maskattn_trt.train.loop import train
from maskattn_trt.train.recipe import load_recipe

if __name__ == "__main__":
    recipe_path, out_dir, rank = sys.argv[1], Path(sys.argv[2]), int(__import__("os").environ["RANK"])
    torch.set_num_threads(1)
    recipe = load_recipe(recipe_path, [f'train.out_dir="{out_dir}"', "log.progress=false", *sys.argv[3:]])
    pipe = tiny_sdxl_pipeline(0)
    if rank == 1:  # other initial gate weights on rank 1: DDP must start every rank from rank 0's
        torch.manual_seed(123)
        install_gates(pipe.unet, recipe.gates)
    result = train(recipe, pipe=pipe)
    (out_dir / f"rank{rank}.txt").write_text(
        f"{gates_hash(pipe.unet)} {result.world_size} {result.end_step} {len(result.losses)}\n"
    )
