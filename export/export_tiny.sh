#!/usr/bin/env bash
# Export the tiny offline SDXL UNet with gates, then prove parity eager vs ONNX Runtime (a minute on a laptop).
set -euo pipefail
out=${1:-export/out/tiny}
gates=${GATES:-export/out/tiny_gates.safetensors}
if [[ ! -f "$gates" ]]; then  # demo gates: random heads on the tiny UNet (use your trained checkpoint instead)
    python - "$gates" <<'PY'
import sys
import maskattn_trt as mt
from maskattn_trt.models import build_unet
unet = build_unet("tiny", seed=0)
mt.install_gates(unet, mt.GateConfig())
mt.save_gates(unet, sys.argv[1])
PY
fi
maskattn-trt export --model tiny --gates "$gates" --out "$out" --gate-outputs
maskattn-trt parity --onnx "$out" --json "$out.parity.json"
