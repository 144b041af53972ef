#!/usr/bin/env bash
# Multi-GPU / multi-node gate training on torchrun (default) or Hugging Face Accelerate.
#
#   bash train/launch.sh RECIPE [maskattn-trt train options...]
#
# One process per GPU; DDP synchronises only the gate-head gradients (NCCL on GPUs, gloo on CPU).
# train.effective_batch in the recipe stays fixed: gradient-accumulation micro-steps adapt to the
# number of processes (effective_batch / (batch_size x processes)).
#
# Environment (all optional):
#   LAUNCHER     torchrun | accelerate                       (default torchrun)
#   NPROC        processes per node                          (default: visible GPUs, else 1)
#   NNODES       number of nodes                             (default 1)
#   NODE_RANK    this node's rank, 0 .. NNODES-1             (default 0)
#   MASTER_ADDR  address of node 0                           (default 127.0.0.1)
#   MASTER_PORT  a free port on node 0                       (default 29500)
#
# Examples:
#   bash train/launch.sh train/sdxl_512.toml --model /models/sdxl --data /data/coco/annotations/captions_train2014.json
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash train/launch.sh train/sdxl_512.toml ...   # on node 0
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 bash train/launch.sh train/sdxl_512.toml ...   # on node 1
#   NPROC=2 bash train/launch.sh train/tiny_cpu.toml --out runs/tiny_ddp                      # 2 CPU processes
#   LAUNCHER=accelerate bash train/launch.sh train/sdxl_1024.toml --model /models/sdxl
# After a pre-emption, run the same command with --resume.
set -euo pipefail

if [[ $# -lt 1 ]]; then
    sed -n '2,25p' "$0"
    exit 2
fi
recipe=$1
shift

PYTHON=${PYTHON:-python}
LAUNCHER=${LAUNCHER:-torchrun}
NPROC=${NPROC:-$("$PYTHON" -c 'import torch; print(max(1, torch.cuda.device_count()))')}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
# Each process on a CPU-only machine gets its share of the cores.
if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( $(nproc) / NPROC > 0 ? $(nproc) / NPROC : 1 ))}
fi

case "$LAUNCHER" in
    torchrun)
        exec "$PYTHON" -m torch.distributed.run --nproc-per-node "$NPROC" --nnodes "$NNODES" --node-rank "$NODE_RANK" \
            --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT" \
            -m maskattn_trt.cli train --recipe "$recipe" "$@"
        ;;
    accelerate)
        exec accelerate launch --multi_gpu --mixed_precision no --dynamo_backend no --num_processes $(( NPROC * NNODES )) --num_machines "$NNODES" \
            --machine_rank "$NODE_RANK" --main_process_ip "$MASTER_ADDR" --main_process_port "$MASTER_PORT" \
            -m maskattn_trt.cli train --recipe "$recipe" "$@"
        ;;
    *)
        echo "error: LAUNCHER must be torchrun or accelerate; got '$LAUNCHER'" >&2
        exit 2
        ;;
esac
