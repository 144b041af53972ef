"""Export the real SDXL UNet architecture (random weights) with MaskAttn gates on this machine.

Measures wall time, peak RSS and file size. Run it under the heavy-job lock (it needs ~10 GiB):

    flock /tmp/maskattn-heavy.lock /usr/bin/time -v python bench/export_sdxl.py --out /tmp/sdxl_gated_fp16

The UNet is built on the meta device and allocated once, directly in the export dtype (no fp32 copy), and
the exporter's weights are streamed into one external-data file (never all in memory twice).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/sdxl_gated_fp16")
    parser.add_argument("--dtype", default="fp16", choices=["fp32", "fp16"])
    parser.add_argument("--exporter", default="torchscript", choices=["torchscript", "dynamo"])
    parser.add_argument("--open-gates", action="store_true", help="stock-equivalent graph instead of gated")
    parser.add_argument("--slim", action="store_true", help="also run onnxslim (loads all weights)")
    parser.add_argument("--batch", default="1:1:2")
    parser.add_argument("--latent", default="32:128:128", help="latent height/width range (pixels / 8)")
    parser.add_argument("--ready", default=None, help="write one line to this file when done")
    args = parser.parse_args()

    import torch

    from maskattn_trt import GateConfig, install_gates
    from maskattn_trt.export import export_unet
    from maskattn_trt.models import load_unet
    from maskattn_trt.spec import Range, UNetIOSpec

    torch.set_num_threads(2)
    start = time.perf_counter()
    unet = load_unet("sdxl", seed=0, dtype=args.dtype)
    installation = install_gates(unet, GateConfig())  # default: mid stage, encoder + decoder, shared heads
    built_s = time.perf_counter() - start
    rss_built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"built SDXL UNet ({sum(p.numel() for p in unet.parameters()) / 1e9:.2f} B parameters, {args.dtype}, "
          f"{len(installation.sites)} gated sites) in {built_s:.1f} s, peak RSS {rss_built:.2f} GiB", flush=True)
    latent = Range.parse(args.latent, "--latent")
    spec = UNetIOSpec.for_unet(unet, dtype=args.dtype, batch=Range.parse(args.batch, "--batch"), height=latent,
                               width=latent)
    result = export_unet(unet, args.out, spec, exporter=args.exporter, slim=args.slim, open_gates=args.open_gates,
                         source={"model": "sdxl", "seed": 0})
    total_s = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    files = result.manifest["files"]
    figures = {
        "out": str(result.out_dir), "dtype": args.dtype, "exporter": args.exporter, "gated_sites": len(installation.sites),
        "build_s": round(built_s, 1), "export_s": round(result.seconds, 1), "total_s": round(total_s, 1),
        "step_s": result.manifest["step_seconds"], "peak_rss_gib": round(peak, 2),
        "files_mb": {k: round(v["bytes"] / 1e6, 1) for k, v in files.items()}, "nodes": result.manifest["graph"]["nodes"],
        "gate_sigmoids": result.manifest["graph"]["gate_sigmoids"], "isnan": result.manifest["graph"]["isnan"],
    }
    print(result.summary())
    print(json.dumps(figures, indent=2))
    if args.ready:
        Path(args.ready).write_text(f"{result.out_dir} ready: {json.dumps(figures)}\n")


if __name__ == "__main__":
    main()
