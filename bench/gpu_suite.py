"""GPU benchmark suite (issue 14): CUDA tests, gate overhead at SDXL size, torch.compile, training, generate.

One command, resumable in parts (each well under 10 minutes on an H100); every part runs in its own process
(clean CUDA memory and dynamo state) and merges its record into one JSON file; a table of everything in the
file is printed at the end::

    python bench/gpu_suite.py                                   # every part, in order
    python bench/gpu_suite.py --part tests,overhead             # some parts (others already in the JSON stay)
    python bench/gpu_suite.py --part compile --json bench/out/gpu_suite.json
    python bench/gpu_suite.py --table                            # print the table of an existing JSON
    python bench/gpu_suite.py --part overhead --preset tiny --latent 32 --device cpu   # a CPU smoke run

Parts:
  tests     the project's GPU tests (-m gpu) and the whole suite on this machine (CUDA where code picks it)
  overhead  eager UNet, fp16, batch 2 (CFG) at latent 128 (1024 px): stock vs gated per stage, interleaved
  compile   torch.compile (inductor, default mode) of the stock and the gated UNet: compile time, graph
            breaks, latency against eager
  train     gate training step (the project's objective, bf16 backbone, fp32 gate heads, AdamW) at 512 and
            1024 px, with and without gradient checkpointing: step time, peak CUDA memory
  generate  the project's sampler on CUDA with the eager runner: tiny and SDXL-size random pipelines,
            per-step time, UNet time and sampler overhead
Random weights: a randomly initialised SDXL UNet can overflow fp16 (outputs are checked and reported);
its timings are still those of the real architecture.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_common import environment, merge_result, read_results  # noqa: E402
from gpu_parts import PARTS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_JSON = REPO / "bench" / "out" / "gpu_suite.json"
ORDER = ("tests", "overhead", "compile", "train", "generate")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", default=",".join(ORDER), help=f"comma-separated parts ({', '.join(ORDER)})")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help="results file (parts are merged into it)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--preset", default="sdxl", choices=["tiny", "small", "sdxl"], help="UNet size for overhead/compile/train")
    p.add_argument("--batch", type=int, default=2, help="UNet batch for overhead/compile (2 = one image with CFG)")
    p.add_argument("--latent", type=int, default=128, help="latent size for overhead/compile (128 = 1024 px)")
    p.add_argument("--rounds", type=int, default=10, help="interleaved rounds per comparison")
    p.add_argument("--per-round", type=int, default=5, help="timed calls per variant per round")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--train-configs", default="512:16,1024:8",
                   help="PIXELS:BATCH pairs for the train part (batch halves on out-of-memory)")
    p.add_argument("--train-iters", type=int, default=5, help="timed training steps per config")
    p.add_argument("--steps", type=int, default=30, help="sampler steps for the generate part")
    p.add_argument("--images", type=int, default=2, help="images per variant and round in the generate part")
    p.add_argument("--pytest-workers", type=int, default=8, help="pytest-xdist workers for the whole suite (0 = none)")
    p.add_argument("--part-timeout", type=int, default=570, help="seconds one part may run before it is stopped")
    p.add_argument("--table", action="store_true", help="only print the table of the JSON file")
    p.add_argument("--one", help=argparse.SUPPRESS)  # (internal) run this part in this process
    return p


def _ms(row: dict | None) -> str:
    return f"{row['median']:.2f} [{row['p10']:.2f}-{row['p90']:.2f}]" if row else "-"


def format_table(results: dict) -> list[str]:
    """A text table of every part in the results file (medians, [p10-p90] spreads)."""
    lines = []
    env = next((r["environment"] for r in results.values() if "environment" in r), None)
    if env:
        lines.append(f"machine: {env.get('gpu', env['device'])} (sm {env.get('capability', '-')}, "
                     f"{env.get('gpu_memory_gib', '-')} GiB, driver {env.get('driver', '-')}), {env['cpu_count']} CPUs; "
                     f"python {env['python']}, torch {env['torch']} (CUDA {env['cuda']}), diffusers {env['diffusers']}")
    for part in ORDER:
        r = results.get(part)
        if r is None:
            continue
        lines.append(f"\n[{part}] {r.get('seconds', '-')} s: {r.get('command', '')}")
        if "error" in r:
            lines.append(f"  ERROR {r['error']}")
        if part == "tests":
            for key in ("gpu_marked", "whole_suite"):
                if key in r:
                    lines.append(f"  {key:<12} rc={r[key]['returncode']} {r[key]['summary']} ({r[key]['seconds']} s)")
                    lines += [f"    {p}" for p in r[key]["problems"][:15]]
        elif part == "overhead" and "latency_ms" in r:
            lines.append(f"  {r['preset']} UNet {r['params_m']} M params, {r['dtype']}, batch {r['batch']}, latent "
                         f"{r['latent']} ({r['pixels']} px); ms median [p10-p90]; ratio = median of per-round ratios "
                         f"[p10-p90]; fp16 matmul ceiling {r.get('matmul_fp16_tflops')} TFLOP/s")
            for name, row in r["latency_ms"].items():
                ratio = r["vs_stock"].get(name)
                sites = r["sites"].get(name.replace("gated-", ""), "") if name.startswith("gated") else ""
                lines.append(f"  {name:<12} {_ms(row):>26} ms" + (f"  x{_ms(ratio['per_round'])}" if ratio else "")
                             + (f"  ({sites} sites)" if sites else ""))
            lines.append(f"  outputs: {r['output_check']}; mid gate open fraction {r['gate_open_fraction_mid']}")
        elif part == "compile" and "compile" in r:
            for name, c in r["compile"].items():
                lines.append(f"  compile {name:<10} " + (c["error"][:200] if "error" in c else
                             f"first call {c['first_call_s']} s, graph breaks {c['graph_breaks']}, graphs "
                             f"{c['unique_graphs']}, max |compiled - eager| {c['max_abs_diff_vs_eager']}"))
            for name, row in r.get("latency_ms", {}).items():
                lines.append(f"  {name:<20} {_ms(row):>26} ms")
            for name, ratio in r.get("ratios", {}).items():
                lines.append(f"  {name:<38} x{_ms(ratio['per_round'])}")
        elif part == "train" and "rows" in r:
            lines.append(f"  {r['preset']} UNet, {r['precision']} backbone, gates {r['gates']['stage']} "
                         f"({r['gate_params']} params), AdamW; step = loss + backward + clip + AdamW")
            for row in r["rows"]:
                head = (f"  {row['pixels']:>4} px ckpt={'on ' if row['gradient_checkpointing'] else 'off'} "
                        f"batch {row.get('batch', '-'):>2}")
                oom = f" (OOM at {row['out_of_memory_at_batch']})" if "out_of_memory_at_batch" in row else ""
                if "step_ms" in row:
                    lines.append(f"{head}: step {_ms(row['step_ms'])} ms, {row['samples_per_s']} samples/s, peak "
                                 f"{row['peak_allocated_gib']} GiB{oom}; loss finite {row['loss_finite']}")
                else:
                    lines.append(f"{head}: {row.get('error', '')}{oom}")
            lines.append(f"  DDP: {r['ddp']}")
        elif part == "generate":
            for name, g in r.items():
                if not isinstance(g, dict) or "steps" not in g:
                    continue
                lines.append(f"  {name}: {g['pixels']} px, {g['steps']} steps, CFG batch 2, latents finite "
                             f"{g['latents_finite']}; sampler overhead {_ms(g['sampler_overhead_ms_per_step'])} "
                             f"ms/step = {g['sampler_overhead_share'] * 100:.2f}% of a gated step")
                for v in ("stock", "gated-mid"):
                    lines.append(f"    {v:<10} step {_ms(g[v]['denoise_step_ms'])} ms (UNet alone "
                                 f"{_ms(g['unet_call_ms'][v])}), encode {g[v]['encode_ms']['median']:.1f} ms, decode "
                                 f"{g[v]['decode_ms']['median']:.1f} ms, image {g[v]['image_s']} s")
    return lines


def run_one(part: str, args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    started = time.perf_counter()
    record = {"command": " ".join([Path(sys.executable).name, *sys.argv]).replace(" --one " + part, f" --part {part}"),
              "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "environment": environment(device)}
    try:
        record.update(PARTS[part](args, device))
    except Exception as exc:  # a broken part is a result too: record it and let the other parts run
        import traceback

        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc()[-4000:]
    record["seconds"] = round(time.perf_counter() - started, 1)
    merge_result(args.json, part, record)
    if "error" in record:
        print(record["traceback"], file=sys.stderr)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.one:
        run_one(args.one, args)
        return 0
    if not args.table:
        parts = [p.strip() for p in args.part.split(",") if p.strip()]
        unknown = [p for p in parts if p not in PARTS]
        if unknown:
            raise SystemExit(f"unknown part(s) {unknown}; choose from {', '.join(ORDER)}")
        passthrough = [a for a in (argv if argv is not None else sys.argv[1:])]
        for part in parts:
            print(f"== part {part}", flush=True)
            command = [sys.executable, __file__, *passthrough, "--one", part]
            try:
                subprocess.run(command, timeout=args.part_timeout, check=False)
            except subprocess.TimeoutExpired:  # keep what the part saved before it was stopped
                partial = read_results(args.json).get(part, {}) if args.json.is_file() else {}
                partial = partial if str(partial.get("error", "")).startswith("incomplete") else {}
                merge_result(args.json, part, {**partial, "command": " ".join(command),
                                               "error": f"stopped after --part-timeout {args.part_timeout} s"
                                               + (f" ({partial['error']})" if partial else "")})
    print("\n".join(format_table(read_results(args.json))))
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
