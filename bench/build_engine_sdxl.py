"""Benchmark TensorRT-RTX engine builds of a (full-size) export: wall time, peak RSS, engine size per variant.

Each variant runs in its own process (peak RSS = that process's ru_maxrss); engines are deleted afterwards
and only the numbers are kept. Run heavy builds one at a time under the shared lock:

    flock /tmp/maskattn-heavy.lock python bench/build_engine_sdxl.py --onnx /tmp/sdxl_gated_fp16 --json bench.json

``--export-fallback`` (run it by itself, before) writes a full-size gated SDXL fp16 export (random weights, legacy exporter)
when no export from `maskattn-trt export` is at hand.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = {
    # name: extra BuildOptions fields (the builder always streams the plan to disk)
    "stream": {},
    "stream+1thread": {"max_threads": 1},
    "stream+opt0": {"opt_level": 0},
    "stream+tactic_dram_2g": {"tactic_dram_mib": 2048},
}

_CHILD = """
import json, sys, time
from pathlib import Path
from maskattn_trt.engines.build import BuildOptions, build_engine
args = json.loads(sys.argv[1])
start = time.perf_counter()
r = build_engine(BuildOptions(onnx=Path(args["onnx"]), out=Path(args["out"]), builder="tensorrt-rtx",
                              compute_capabilities=(args["cc"],), progress=False, **args["extra"]))
import resource
print(json.dumps({"seconds": round(time.perf_counter() - start, 1), "engine_bytes": r.manifest.engine_bytes,
                  "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}))
"""


def run_variant(onnx: str, cc: str, name: str, extra: dict) -> dict:
    with tempfile.TemporaryDirectory(dir=Path(onnx).parent) as tmp:
        out = Path(tmp) / "bench.engine"
        payload = json.dumps({"onnx": onnx, "out": str(out), "cc": cc, "extra": extra})
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _CHILD, payload], capture_output=True, text=True)
        wall = time.perf_counter() - start
    result = {"variant": name, "wall_s": round(wall, 1), "ok": proc.returncode == 0}
    if proc.returncode == 0:
        result.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    else:
        result["error"] = (proc.stderr.strip().splitlines() or ["?"])[-1][:300]
    return result


def export_fallback(folder: Path, seed: int = 0) -> None:
    """Full-size SDXL UNet (random weights) with default gates, fp16, legacy exporter, external data."""
    import torch

    from maskattn_trt import GateConfig, install_gates
    from maskattn_trt.gates import UNetGraph, gate_parameters
    from maskattn_trt.models import build_unet
    from maskattn_trt.spec import INPUT_NAMES, Range, UNetIOSpec

    folder.mkdir(parents=True, exist_ok=True)
    unet = build_unet("sdxl", seed=seed).half()
    installation = install_gates(unet, GateConfig())
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in gate_parameters(unet):
            param.copy_(torch.randn(param.shape, generator=gen) * 0.1 + (1.0 if param.ndim == 1 else 0.0))
    spec = UNetIOSpec.for_unet(unet, dtype="fp16", batch=Range(1, 1, 2), height=Range(32, 128, 128),
                               width=Range(32, 128, 128))
    feed = spec.dummy_inputs(1, 32, 32)
    torch.onnx.export(UNetGraph(unet, spec).eval(), tuple(feed[n] for n in INPUT_NAMES), str(folder / "unet.onnx"),
                      dynamo=False, input_names=list(INPUT_NAMES), output_names=spec.output_names,
                      dynamic_axes=spec.dynamic_axes(), opset_version=17)
    spec.save(folder / "io_spec.json")
    print(f"exported {len(installation.sites)} gated sites to {folder}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", required=True, help="export folder")
    parser.add_argument("--cc", default="SM89")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--export-fallback", action="store_true", help="export a gated SDXL fp16 into --onnx, exit")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.export_fallback:
        start = time.perf_counter()
        export_fallback(Path(args.onnx))
        print(f"export: {time.perf_counter() - start:.0f} s, peak RSS "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB", flush=True)
        return
    results = []
    for name in args.variants.split(","):
        result = run_variant(args.onnx, args.cc, name, VARIANTS[name])
        print(json.dumps(result), flush=True)
        results.append(result)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
