#!/usr/bin/env bash
# Gate variants on the trained tiny base (issue 11: "try to make the gates help"): train each variant of
# train/tiny_gates.toml, then evaluate it gated vs gates open on the same held-out scenes and seeds.
#
#   bash bench/gate_variants.sh [RUNS_DIR] [VARIANT ...]        (default: runs/variants, every variant)
#
# Each variant writes RUNS_DIR/<name>/train (the gate run) and RUNS_DIR/<name>/eval (evaluation.json,
# contact_sheet.png); the last lines print one summary row per variant (tools/eval_table.py).
# The base comes from --model tiny (the shipped model); MODEL=runs/base/model uses a train-base output instead.
set -euo pipefail
RUNS=${1:-runs/variants}
shift || true
MODEL=${MODEL:-tiny}
COUNT=${COUNT:-200}
STEPS=${STEPS:-20}

declare -A VARIANTS=(
  [mid]=""                                                    # the recipe as shipped: mid stage, 600 steps
  [mid_long]="--set train.steps=1200"                         # twice as long (1200 steps)
  [all]="--set gates.stage=all"                               # every cross-attention layer gated
  [high]="--set gates.stage=high"                             # the highest-resolution stage
  [renorm]="--set gates.training_form=renormalized"           # the renormalized training form
  [nosnr]="--set train.min_snr_gamma=0.0"                     # plain MSE instead of min-SNR weights
  [open_init]="--set train.init_logit_bias=4.0"               # heads start open (sigmoid(4) = 0.98)
  [tau07]="--set gates.threshold=0.7"                         # a stricter gate: open only where p > 0.7
  [mask]="--set train.mask_weight=1.0"                        # + mask supervision: colour/shape words' gates
  [mask01]="--set train.mask_weight=0.1"                      #   learn their objects' masks (ground truth)
  [mask_open]="--set train.mask_weight=1.0 --set train.init_logit_bias=4.0"  # same, heads start open
  [mask_long]="--set train.mask_weight=1.0 --set train.steps=2000 --set gates.hidden_size=64"  # longer, wider
)
NAMES=("$@")
[ ${#NAMES[@]} -eq 0 ] && NAMES=(mid open_init mid_long all high renorm nosnr tau07 mask mask01 mask_open mask_long)

for name in "${NAMES[@]}"; do
  extra=${VARIANTS[$name]?unknown variant $name}
  if [ ! -f "$RUNS/$name/train/gates.safetensors" ]; then
    # shellcheck disable=SC2086
    maskattn-trt train --recipe train/tiny_gates.toml --model "$MODEL" --out "$RUNS/$name/train" --no-progress $extra
  fi
  if [ ! -f "$RUNS/$name/eval/evaluation.json" ]; then
    maskattn-trt evaluate --model "$MODEL" --gates "$RUNS/$name/train/gates.safetensors" --count "$COUNT" \
      --steps "$STEPS" --batch 8 --no-progress --out "$RUNS/$name/eval" > "$RUNS/$name/eval.txt"
  fi
done
python tools/eval_table.py "${NAMES[@]/#/$RUNS/}"
