"""Bounded load test of ``maskattn-trt serve`` on localhost, against sequential ``generate`` in one process.

Starts the server in this process (local Ray, 127.0.0.1) on an ONNX export (by default it exports the tiny
gated UNet with profile batch 1..16 into a temporary folder), then for each concurrency level sends
``--requests`` compatible requests from that many client threads (every level stops after its count or
``--level-timeout-s``, whichever comes first) and reports p50 / p95 latency, images/s, mean images per UNet
batch (from the replica's /stats) and errors. The same number of images is generated sequentially in this
process with ``maskattn_trt.sampling.generate.generate`` (batch 1, the `generate` command's default) while the
server is idle, before and after the levels. ``--repeats`` runs the sweep again (reversed order) for spread.

    PYTHONPATH=. python bench/serve_load.py --requests 60 --repeats 2 --json out/serve_load.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PROMPTS = ["a red cat on a blue sofa", "a green square left of a yellow circle", "two blue triangles",
           "a dog in the snow", "a purple star above a red square", "an orange circle right of a cat"]


def export_tiny(folder: Path) -> tuple[Path, Path]:
    from maskattn_trt.export.from_model import ExportRequest, export_model
    from maskattn_trt.gates import install_gates, randomize_gates, save_gates
    from maskattn_trt.models import tiny_sdxl_pipeline

    pipe = tiny_sdxl_pipeline(0)
    install_gates(pipe.unet)
    randomize_gates(pipe.unet, seed=0)
    gates = save_gates(pipe.unet, folder / "gates.safetensors")
    export_model(ExportRequest(out=folder / "tiny", model="tiny", gates=gates, batch="1:8:16"), progress=False)
    return folder / "tiny", gates


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def run_level(client, concurrency: int, requests: int, settings: dict, timeout_s: float, seed0: int) -> dict:
    """``requests`` requests from ``concurrency`` threads; stops by itself after the count or ``timeout_s``."""
    from maskattn_trt.serve.client import ServeError

    before = client.stats()
    counter = iter(range(requests))
    lock = threading.Lock()
    latencies, compute, errors, stages = [], [], [], []
    deadline = time.monotonic() + timeout_s

    def worker():
        while time.monotonic() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            t0 = time.perf_counter()
            try:
                image = client.generate(PROMPTS[i % len(PROMPTS)], seed=seed0 + i, **settings)[0]
            except ServeError as exc:
                errors.append(f"{exc.status}: {exc}")
                continue
            latencies.append(time.perf_counter() - t0)
            t = image.metadata["timings"]
            compute.append(t["encode_s"] + t["denoise_s"] + t["decode_s"])
            stages.append((t["encode_s"], t["denoise_s"], t["decode_s"]))

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for _ in range(concurrency):
            pool.submit(worker)
    wall = time.perf_counter() - start
    after = client.stats()
    images = after["images"] - before["images"]
    batches = after["batches"] - before["batches"]
    missing = requests - len(latencies) - len(errors)
    return {"concurrency": concurrency, "ok": len(latencies), "errors": len(errors) + missing,
            "error_samples": errors[:3], "wall_s": wall, "images_per_s": len(latencies) / wall,
            "p50_s": percentile(latencies, 50), "p95_s": percentile(latencies, 95),
            "mean_batch": images / batches if batches else 0.0,
            "overhead": 1 - statistics.mean(  # share of client latency outside encode+denoise+decode
c / lat for c, lat in zip(compute, latencies, strict=True))
            if latencies else float("nan"),
            "stage_means_s": [round(statistics.mean(x), 4) for x in zip(*stages, strict=True)] if stages else [],
            "rss_mib": after.get("rss_mib"), "peak_rss_mib": after.get("peak_rss_mib")}


def sequential(onnx: Path, gates: Path, count: int, settings: dict, threads: int, out: Path,
               torch_threads: int | None) -> dict:
    """``count`` images with generate's library call, one at a time, in this process. ``torch_threads``: torch's
    intra-op threads for text encoders and VAE (None = torch's default, what `generate` uses)."""
    import torch

    from maskattn_trt.sampling.generate import GenerateRequest, generate
    from maskattn_trt.sampling.prompts import PromptEntry
    from maskattn_trt.sampling.sampler import SampleSettings

    default = torch.get_num_threads()
    torch.set_num_threads(torch_threads or default)

    entries = tuple(PromptEntry(PROMPTS[i % len(PROMPTS)], None, 1000 + i) for i in range(count))
    # warm-up call (first-call costs of the VAE / text encoders), as the server warms up before serving
    generate(GenerateRequest(prompts=entries[:2], out=out / "warm", model="tiny", backend="onnxruntime", onnx=onnx,
                             gates=gates, threads=threads, progress=False, settings=SampleSettings(**settings)))
    report = generate(GenerateRequest(prompts=entries, out=out, model="tiny", backend="onnxruntime", onnx=onnx,
                                      gates=gates, threads=threads, progress=False,
                                      settings=SampleSettings(**settings)))
    torch.set_num_threads(default)
    work = sum(report.timings[k] for k in ("encode", "denoise", "decode", "write"))
    n = len(report.images)
    return {"torch_threads": torch_threads or default, "images": n, "seconds": work, "images_per_s": n / work,
            "per_image_s": work / n, **{f"{k}_s": report.timings[k] / n for k in ("encode", "denoise", "decode")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", default=None, help="export folder (default: export the tiny gated UNet)")
    parser.add_argument("--gates", default=None)
    parser.add_argument("--requests", type=int, default=60, help="requests per concurrency level")
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--batch-wait-ms", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2, help="torch + ORT threads, server replica and baseline")
    parser.add_argument("--port", type=int, default=8321)
    parser.add_argument("--level-timeout-s", type=float, default=180.0)
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    settings = {"steps": args.steps, "guidance": 5.0, "scheduler": "euler", "width": args.size,
                "height": args.size}

    from maskattn_trt.serve import server
    from maskattn_trt.serve.client import Client
    from maskattn_trt.serve.model import ModelConfig

    tmp = Path(tempfile.mkdtemp(prefix="serve_load_"))
    onnx, gates = (Path(args.onnx), Path(args.gates) if args.gates else None) if args.onnx else export_tiny(tmp)
    config = server.ServerConfig(
        model=ModelConfig(model="tiny", backend="onnxruntime", onnx=str(onnx), gates=str(gates) if gates else None,
                          threads=args.threads, max_batch=args.max_batch),
        batch_wait_ms=args.batch_wait_ms, request_timeout_s=120.0, port=args.port, num_cpus=1.0,
        log_encoding="TEXT")
    # torch's default threads (what `generate` does) and 1 thread (multi-threaded torch is erratic on a shared
    # 2-core machine), with the server idle
    seq = [sequential(onnx, gates, args.requests, settings, args.threads, tmp / "seq0", None),
           sequential(onnx, gates, args.requests, settings, args.threads, tmp / "seq1", 1)]
    t0 = time.perf_counter()
    url = server.start(config)
    print(f"server ready at {url} in {time.perf_counter() - t0:.1f} s")
    client = Client(url, timeout_s=150)
    client.generate("warm", **settings)
    rows = []
    try:
        for r in range(args.repeats):
            for c in (levels if r % 2 == 0 else levels[::-1]):
                row = run_level(client, c, args.requests, settings, args.level_timeout_s, seed0=10_000 * (r + 1))
                row["repeat"] = r
                rows.append(row)
                print(f"c={c:<2} ok={row['ok']:<4} err={row['errors']} {row['images_per_s']:.2f} img/s "
                      f"p50 {row['p50_s'] * 1e3:.0f} ms p95 {row['p95_s'] * 1e3:.0f} ms batch {row['mean_batch']:.2f} "
                      f"overhead {row['overhead'] * 100:.1f}%", flush=True)
    finally:
        server.stop(config)
    seq.append(sequential(onnx, gates, args.requests, settings, args.threads, tmp / "seq2", 1))
    print_table(rows, seq, levels, args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), "levels": rows, "sequential": seq}, indent=2))


def _span(values: list[float], fmt: str) -> str:
    lo, hi = min(values), max(values)
    return fmt.format(lo) if len(values) == 1 or fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}-{fmt.format(hi)}"


def print_table(rows: list[dict], seq: list[dict], levels: list[int], args) -> None:
    print(f"\n{args.requests} requests per level x {args.repeats} repeat(s); {args.steps} steps, {args.size}x{args.size} px,"
          f" guidance 5 (UNet batch = 2 x images), max batch {args.max_batch}, {args.threads} threads")
    print("| concurrency | images/s | p50 ms | p95 ms | mean images/batch | errors | overhead | vs c=1 |")
    print("|---|---|---|---|---|---|---|---|")
    base = statistics.mean(r["images_per_s"] for r in rows if r["concurrency"] == levels[0])
    for c in levels:
        mine = [r for r in rows if r["concurrency"] == c]
        ips = [r["images_per_s"] for r in mine]
        print(f"| {c} | {_span(ips, '{:.2f}')} | {_span([r['p50_s'] * 1e3 for r in mine], '{:.0f}')} | "
              f"{_span([r['p95_s'] * 1e3 for r in mine], '{:.0f}')} | {_span([r['mean_batch'] for r in mine], '{:.2f}')} | "
              f"{sum(r['errors'] for r in mine)} | {_span([r['overhead'] * 100 for r in mine], '{:.1f}')}% | "
              f"{statistics.mean(ips) / base:.2f}x |")
    for threads in sorted({x["torch_threads"] for x in seq}):
        mine = [x for x in seq if x["torch_threads"] == threads]
        print(f"| sequential generate, torch {threads} thread(s) ({len(mine)} run(s)) | "
              f"{_span([x['images_per_s'] for x in mine], '{:.2f}')} | "
              f"{_span([x['per_image_s'] * 1e3 for x in mine], '{:.0f}')} per image | | 1 | 0 | | |")
    print("per-image stage means (encode / denoise / decode s): "
          + "; ".join(f"sequential torch {x['torch_threads']}: {x['encode_s']:.3f} / {x['denoise_s']:.3f} / "
                      f"{x['decode_s']:.3f}" for x in seq)
          + "; served c=1: " + " | ".join("/".join(f"{v:.3f}" for v in r["stage_means_s"])
                                          for r in rows if r["concurrency"] == levels[0]))
    total = sum(r["ok"] + r["errors"] for r in rows)
    print(f"total requests {total}, failed {sum(r['errors'] for r in rows)}; replica RSS "
          f"{rows[-1]['rss_mib']} MiB (peak {rows[-1]['peak_rss_mib']} MiB)")


if __name__ == "__main__":
    main()
