#!/usr/bin/env bash
# Median latency, same run: eager stock / eager gated / ORT stock / ORT gated for the tiny and the mid-size
# ('small', SDXL-shaped) UNet -> gate overhead per backend and ORT/eager speed ratio. Takes the heavy-job lock so
# no export or engine build runs beside it (the machine has 2 cores; concurrent jobs distort timings).
set -euo pipefail
out=${1:-bench/results/backends.json}
mkdir -p "$(dirname "$out")"
flock /tmp/maskattn-heavy.lock maskattn-trt bench --preset tiny --preset small --repeats "${REPEATS:-20}" \
    --threads "${THREADS:-2}" --json "$out"
