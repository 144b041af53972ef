"""Parity and latency of the full-size gated SDXL export (from bench/export_sdxl.py) against eager PyTorch.

Rebuilds the exported UNet exactly (same seed, same construction, gates initialised from the same RNG
state; verified by the manifest's gate hash), upcasts the backbone to fp32 for the reference, and runs
eager fp32 and ONNX Runtime on the same random feed. Needs ~17 GiB: run it under the heavy-job lock:

    flock /tmp/maskattn-heavy.lock /usr/bin/time -v python bench/parity_sdxl.py --onnx /tmp/sdxl_gated_fp16
"""

from __future__ import annotations

import argparse
import json
import resource
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", default="/tmp/sdxl_gated_fp16")
    parser.add_argument("--shape", default="1x32x32", help="latent BATCHxHEIGHTxWIDTH")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import torch

    from maskattn_trt import GateConfig, install_gates
    from maskattn_trt.export import cast_unet, read_manifest
    from maskattn_trt.export.patches import recording_gate_margins
    from maskattn_trt.export.source import load_unet_for_export
    from maskattn_trt.gates import gates_hash
    from maskattn_trt.parity import compare_runners
    from maskattn_trt.runners import EagerRunner, OrtRunner

    torch.set_num_threads(2)
    manifest = read_manifest(args.onnx)
    unet = load_unet_for_export(manifest["model"], manifest["dtype"], manifest["seed"] or 0)
    if manifest.get("gates_hash"):
        install_gates(unet, GateConfig.from_dict(manifest["gates"]["config"]))
        if gates_hash(unet) != manifest["gates_hash"]:
            raise SystemExit("rebuilt gates differ from the exported ones; was the export made by export_sdxl.py?")
    cast_unet(unet, "fp32")
    ort = OrtRunner(args.onnx, providers="cpu", threads=2)
    batch, height, width = (int(v) for v in args.shape.split("x"))
    feeds = [(f"random b{batch} {height}x{width} #{i}", ort.spec.replace(dtype="fp32").dummy_inputs(
        batch, height, width, seed=i)) for i in range(args.repeats)]
    start = time.perf_counter()
    with recording_gate_margins(unet) as margins:
        report = compare_runners(EagerRunner(unet, ort.spec.replace(dtype="fp32")), {"onnxruntime": ort}, feeds,
                                 reference_margins=margins)
    for line in report.table():
        print(line)
    cases = report.cases
    print(json.dumps({
        "onnx": args.onnx, "shape": [batch, height, width], "passed": report.passed,
        "rel_l2": [c.outputs["noise_pred"].rel_l2 for c in cases],
        "max_abs": [c.outputs["noise_pred"].max_abs for c in cases],
        "gate_flips": [sum(g.flips for g in c.gates.values()) for c in cases],
        "eager_fp32_s": [round(c.reference_seconds, 2) for c in cases],
        "ort_fp16_s": [round(c.seconds, 2) for c in cases],
        "wall_s": round(time.perf_counter() - start, 1),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
    }, indent=2))


if __name__ == "__main__":
    main()
