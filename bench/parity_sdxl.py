"""Parity and latency of the full-size gated SDXL export (from bench/export_sdxl.py) against eager PyTorch.

Two phases in two processes, so the machine never holds both models: (1) ONNX Runtime runs the fp16 graph on
fresh random feeds and saves its outputs (ORT's CPU kernels upcast fp16 weights, so the session alone is
~3x the 5 GB of weights); (2) the exported UNet is rebuilt exactly (same seed and construction, gates from
the same RNG state, verified by the manifest's gate hash), upcast to fp32 and run eagerly on the same feeds;
the outputs are compared with the parity harness and the ("fp32", "fp16") tolerances. Run it under the
heavy-job lock:

    flock /tmp/maskattn-heavy.lock python bench/parity_sdxl.py --onnx /tmp/sdxl_gated_fp16
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


def _peak_gib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)


def _feeds(spec, shape: str, count: int):
    batch, height, width = (int(v) for v in shape.split("x"))
    fp32 = spec.replace(dtype="fp32")
    return [(f"random b{batch} {height}x{width} #{i}", fp32.dummy_inputs(batch, height, width, seed=i))
            for i in range(count)]


def run_ort(args) -> None:
    import torch

    from maskattn_trt.runners import OrtRunner

    start = time.perf_counter()
    with OrtRunner(args.onnx, providers="cpu", threads=2) as ort:
        load_s = time.perf_counter() - start
        outputs, seconds = {}, {}
        for label, feed in _feeds(ort.spec, args.shape, args.repeats):
            outputs[label] = ort.infer(feed)["noise_pred"]
            seconds[label] = ort.last_inference_s
    torch.save({"outputs": outputs, "seconds": seconds, "load_s": load_s, "peak_gib": _peak_gib()}, args.save)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", default="/tmp/sdxl_gated_fp16")
    parser.add_argument("--shape", default="1x32x32", help="latent BATCHxHEIGHTxWIDTH")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--phase", choices=["all", "ort"], default="all")
    parser.add_argument("--save", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "ort":
        run_ort(args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        save = Path(tmp) / "ort.pt"
        start = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--phase", "ort", "--onnx", args.onnx, "--shape", args.shape,
                        "--repeats", str(args.repeats), "--save", str(save)], check=True)
        ort_wall = time.perf_counter() - start
        import torch

        ort = torch.load(save, weights_only=True)

    from maskattn_trt import GateConfig, install_gates
    from maskattn_trt.export import cast_unet, read_manifest
    from maskattn_trt.gates import gates_hash
    from maskattn_trt.models import load_unet
    from maskattn_trt.parity.compare import _output_stats
    from maskattn_trt.runners import EagerRunner
    from maskattn_trt.spec import TOLERANCES, UNetIOSpec

    torch.set_num_threads(2)
    manifest = read_manifest(args.onnx)
    unet = load_unet(manifest["model"], manifest["seed"] or 0, dtype=manifest["dtype"])
    if manifest.get("gates_hash"):
        install_gates(unet, GateConfig.from_dict(manifest["gates"]["config"]))
        if gates_hash(unet) != manifest["gates_hash"]:
            raise SystemExit("rebuilt gates differ from the exported ones; was the export made by export_sdxl.py?")
    cast_unet(unet, "fp32")
    spec = UNetIOSpec.load(Path(args.onnx) / "io_spec.json").replace(dtype="fp32")
    atol, rel_tol = TOLERANCES[("fp32", "fp16")]["noise_pred"]
    rows = []
    with EagerRunner(unet, spec) as eager:
        for label, feed in _feeds(spec, args.shape, args.repeats):
            ref = eager.infer(feed)["noise_pred"]
            stats = _output_stats("noise_pred", ref, ort["outputs"][label], atol, rel_tol)
            rows.append({"feed": label, "max_abs": stats.max_abs, "rel_l2": stats.rel_l2, "cosine": stats.cosine,
                         "finite": stats.finite, "passed": stats.passed, "eager_fp32_s": round(eager.last_inference_s, 2),
                         "ort_fp16_s": round(ort["seconds"][label], 2)})
    print(json.dumps({"onnx": args.onnx, "tolerance": {"max_abs": atol, "rel_l2": rel_tol},
                      "flip_tolerance": TOLERANCES[("fp32", "fp16")]["flip_noise_pred"], "rows": rows,
                      "ort_session_load_s": round(ort["load_s"], 1), "ort_phase_wall_s": round(ort_wall, 1),
                      "ort_phase_peak_rss_gib": ort["peak_gib"], "eager_phase_peak_rss_gib": _peak_gib()}, indent=2))


if __name__ == "__main__":
    main()
