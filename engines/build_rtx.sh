#!/usr/bin/env bash
# Build a TensorRT-RTX engine for an exported UNet, ahead of time (no GPU needed).
# usage: engines/build_rtx.sh EXPORT_DIR [SM89 [SM86 ...]]
set -euo pipefail
export_dir=${1:?usage: $0 EXPORT_DIR [SM89 ...]}
shift
targets=("${@:-SM89}")
for sm in "${targets[@]}"; do
  maskattn-trt build-engine --onnx "$export_dir" --builder tensorrt-rtx --compute-capability "$sm"
done
