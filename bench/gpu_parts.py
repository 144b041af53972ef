"""The measurements of ``bench/gpu_suite.py``, one function per part: ``part(args, device) -> record``."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from gpu_common import (
    build_unet_on,
    feed_args,
    free,
    interleaved,
    matmul_ceiling,
    paired_ratios,
    stats,
    sync,
    time_call,
)

REPO = Path(__file__).resolve().parents[1]
STAGES = ("mid", "high", "low", "all")


# ----------------------------------------------------------------------------------------------- tests
def _pytest(args: list[str], timeout: int) -> dict:
    command = [sys.executable, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider", *args]
    started = time.perf_counter()
    try:
        proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)  # its own group: xdist workers are stopped with it
        out, _ = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        import os
        import signal

        os.killpg(proc.pid, signal.SIGKILL)
        out, code = proc.communicate()[0] or "", "timeout"
    lines = out.strip().splitlines()
    summary = next((line for line in reversed(lines) if re.search(r"\b(passed|failed|error|skipped|deselected)\b", line)), "")
    problems = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    skips = sorted({line for line in lines if line.startswith("SKIPPED")})
    return {"command": " ".join(command[1:]), "returncode": code, "summary": summary.strip("= "),
            "problems": problems[:40], "skipped": skips[:20], "seconds": round(time.perf_counter() - started, 1),
            "tail": "\n".join(lines[-60:]) if code not in (0, 5) else ""}


def part_tests(args, device) -> dict:
    import importlib.util

    gpu = _pytest(["-m", "gpu", "tests"], timeout=240)
    extra = []
    if args.pytest_workers and importlib.util.find_spec("xdist"):
        extra += ["-n", str(args.pytest_workers)]
    if importlib.util.find_spec("pytest_timeout"):
        extra += ["--timeout", "300"]
    whole = _pytest([*extra, "tests"], timeout=max(60, args.part_timeout - 60 - int(gpu["seconds"])))
    return {"gpu_marked": gpu, "whole_suite": whole}


# ----------------------------------------------------------------------------------------------- overhead
def _gated_processors(unet, stage: str, force_open: bool = False) -> tuple[dict, int]:
    """The full processor dict of ``unet`` with gates (random heads, seed 0) at ``stage``; unet left stock."""
    from maskattn_trt import GateConfig, install_gates
    from maskattn_trt.gates import gate_processors, remove_gates

    torch.manual_seed(0)
    installation = install_gates(unet, GateConfig(stage=stage))
    for proc in gate_processors(unet).values():
        proc.force_open = force_open
    processors = dict(unet.attn_processors)
    remove_gates(unet)
    return processors, len(installation.sites)


def _check_output(graph, args) -> dict:
    with torch.inference_mode():
        out = graph(*args)
    out = out[0] if isinstance(out, tuple) else out
    finite = torch.isfinite(out)
    return {"finite_fraction": round(finite.float().mean().item(), 6),
            "abs_max_finite": round(out[finite].abs().max().item(), 3) if finite.any() else None}


def part_overhead(args, device) -> dict:
    from maskattn_trt.gates import UNetGraph
    from maskattn_trt.spec import UNetIOSpec

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    t0 = time.perf_counter()
    unet = build_unet_on(args.preset, device, dtype)
    build_s = time.perf_counter() - t0
    spec = UNetIOSpec.for_unet(unet, dtype="fp16" if dtype == torch.float16 else "fp32")
    graph = UNetGraph(unet, spec).eval()
    inputs = feed_args(spec, args.batch, args.latent, device, seed=1)
    procs = {"stock": dict(unet.attn_processors)}
    sites = {}
    for stage in STAGES:
        procs[f"gated-{stage}"], sites[stage] = _gated_processors(unet, stage)
    procs["open-mid"], _ = _gated_processors(unet, "mid", force_open=True)  # processor without the gate
    procs["stock-again"] = procs["stock"]  # the same variant twice: the noise floor of a ratio

    def call():
        with torch.inference_mode():
            graph(*inputs)

    variants = {name: ((lambda p=p: unet.set_attn_processor(dict(p))), call) for name, p in procs.items()}
    times = interleaved(variants, device, args.rounds, args.per_round, args.warmup)
    checks = {}
    for name in ("stock", "gated-mid"):
        unet.set_attn_processor(dict(procs[name]))
        checks[name] = _check_output(graph, inputs)
    open_fraction = _open_fraction(unet, procs["gated-mid"], graph, inputs)
    rows = {name: stats(t) for name, t in times.items()}
    ratios = {name: paired_ratios(times, name, "stock", args.per_round) for name in times if name != "stock"}
    return {"preset": args.preset, "dtype": str(dtype).replace("torch.", ""), "batch": args.batch,
            "latent": args.latent, "pixels": args.latent * 8, "sites": sites, "build_s": round(build_s, 1),
            "params_m": round(sum(p.numel() for p in unet.parameters()) / 1e6, 1),
            "timing": {"rounds": args.rounds, "per_round": args.per_round, "warmup": args.warmup,
                       "clock": "cuda events" if device.type == "cuda" else "perf_counter"},
            "latency_ms": rows, "vs_stock": ratios, "output_check": checks, "gate_open_fraction_mid": open_fraction,
            "matmul_fp16_tflops": matmul_ceiling(device)}


def _open_fraction(unet, processors: dict, graph, inputs) -> float:
    from maskattn_trt.gates import MaskAttnProcessor

    unet.set_attn_processor(dict(processors))
    gated = [p for p in unet.attn_processors.values() if isinstance(p, MaskAttnProcessor)]
    for p in gated:
        p.record = True
    with torch.inference_mode():
        graph(*inputs)
    value = statistics.mean(p.last_gate.float().mean().item() for p in gated)
    for p in gated:
        p.record, p.last_gate = False, None
    return round(value, 4)


# ----------------------------------------------------------------------------------------------- compile
def _cuda_graph(module, inputs):
    """Capture one eager forward in a CUDA graph (no host launch cost on replay); returns the replay call."""
    static = [x.clone() for x in inputs]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.inference_mode():
        for _ in range(2):
            module(*static)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph):
        module(*static)
    return graph.replay


def part_compile(args, device) -> dict:
    """Eager, eager replayed from a CUDA graph, and torch.compile: stock vs gated (mid) UNets.

    The CUDA-graph rows separate the GPU work from the host's launch cost; the record is saved after every
    step, so a part stopped by its time limit still leaves what it measured."""
    from gpu_common import merge_result
    from torch._dynamo.utils import counters

    from maskattn_trt import GateConfig, install_gates
    from maskattn_trt.gates import UNetGraph
    from maskattn_trt.spec import UNetIOSpec

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    graphs = {}
    for name in ("stock", "gated-mid"):
        unet = build_unet_on(args.preset, device, dtype)
        if name != "stock":
            torch.manual_seed(0)
            install_gates(unet, GateConfig())
        spec = UNetIOSpec.for_unet(unet, dtype="fp16" if dtype == torch.float16 else "fp32")
        graphs[name] = UNetGraph(unet, spec).eval()
    inputs = feed_args(spec, args.batch, args.latent, device, seed=1)
    record: dict = {"preset": args.preset, "dtype": str(dtype).replace("torch.", ""), "batch": args.batch,
                    "latent": args.latent, "mode": "torch.compile default (inductor)", "compile": {}}

    def save(note: str) -> None:
        merge_result(args.json, "compile", {**record, "error": f"incomplete: stopped {note}"})

    def caller(f):
        def call():
            with torch.inference_mode():
                f(*inputs)
        return call

    variants = {f"eager {n}": ((lambda: None), caller(g)) for n, g in graphs.items()}
    if device.type == "cuda":
        variants.update({f"cuda-graph {n}": ((lambda: None), _cuda_graph(g, inputs)) for n, g in graphs.items()})
    times = interleaved(variants, device, args.rounds, args.per_round, args.warmup)
    record["latency_ms"] = {n: stats(t) for n, t in times.items()}
    ratios = {"eager gated-mid / eager stock": paired_ratios(times, "eager gated-mid", "eager stock", args.per_round)}
    if device.type == "cuda":
        ratios["cuda-graph gated-mid / cuda-graph stock"] = paired_ratios(times, "cuda-graph gated-mid", "cuda-graph stock",
                                                                         args.per_round)
    record["ratios"] = ratios
    save("before torch.compile")
    compiled = {}
    for name in ("gated-mid", "stock"):  # the gated one first: whether it compiles is the question
        graph = graphs[name]
        counters.clear()
        fn = torch.compile(graph)
        t0 = time.perf_counter()
        try:
            with torch.inference_mode():
                first = fn(*inputs)
            sync(device)
        except Exception as exc:  # record why, keep the eager numbers
            record["compile"][name] = {"error": f"{type(exc).__name__}: {str(exc)[:2000]}"}
            continue
        compile_s = time.perf_counter() - t0
        with torch.inference_mode():
            ref = graph(*inputs)
        sync(device)
        breaks = dict(counters["graph_break"])
        finite = torch.isfinite(ref) & torch.isfinite(first)
        record["compile"][name] = {
            "first_call_s": round(compile_s, 1),
            "graph_breaks": sum(breaks.values()), "graph_break_reasons": {k[:300]: v for k, v in breaks.items()},
            "unique_graphs": counters["stats"].get("unique_graphs", 0),
            "max_abs_diff_vs_eager": round((first - ref)[finite].abs().max().item(), 5) if finite.any() else None,
            "finite_fraction": round(finite.float().mean().item(), 6),
        }
        compiled[name] = fn
        save(f"after compiling {name}")
    if compiled:
        more = {f"eager {n}": ((lambda: None), caller(g)) for n, g in graphs.items()}
        more.update({f"compiled {n}": ((lambda: None), caller(f)) for n, f in compiled.items()})
        times = interleaved(more, device, args.rounds, args.per_round, args.warmup)
        record["latency_ms"].update({n: stats(t) for n, t in times.items() if n.startswith("compiled")})
        if len(compiled) == 2:
            ratios["compiled gated-mid / compiled stock"] = paired_ratios(times, "compiled gated-mid", "compiled stock",
                                                                          args.per_round)
        for n in compiled:
            ratios[f"compiled {n} / eager {n}"] = paired_ratios(times, f"compiled {n}", f"eager {n}", args.per_round)
    return record


# ----------------------------------------------------------------------------------------------- train
def part_train(args, device) -> dict:
    from diffusers import DDPMScheduler

    from maskattn_trt.gates import gate_parameters, install_gates
    from maskattn_trt.spec import TRAIN_DTYPES as DTYPES
    from maskattn_trt.train.objective import GatedDenoiser, Objective
    from maskattn_trt.train.recipe import load_recipe

    recipe = load_recipe(REPO / "train" / "sdxl_512.toml")
    dtype = DTYPES[recipe.model.precision]
    unet = build_unet_on(args.preset, device, dtype)
    torch.manual_seed(recipe.train.seed)
    install_gates(unet, recipe.gates)  # fp32 heads, trainable; the backbone frozen
    params = gate_parameters(unet)
    model = GatedDenoiser(unet)
    optimizer = torch.optim.AdamW(params, lr=recipe.optim.lr, betas=recipe.optim.betas, weight_decay=recipe.optim.weight_decay)
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                              prediction_type="epsilon")  # SDXL base's training schedule
    objective = Objective(scheduler.config)
    cfg = unet.config
    pooled_dim = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
    rows = []
    for item in args.train_configs.split(","):
        pixels, batch = (int(v) for v in item.split(":"))
        for checkpointing in (False, True):
            rows.append(_train_config(unet, model, objective, optimizer, params, device, dtype, pixels, batch,
                                      checkpointing, args.train_iters, cfg.cross_attention_dim, pooled_dim,
                                      recipe.optim.grad_clip))
    return {"preset": args.preset, "precision": recipe.model.precision, "gates": recipe.gates.to_dict(),
            "gate_params": sum(p.numel() for p in params), "iters": args.train_iters, "rows": rows,
            "ddp": _ddp_note(device)}


def _ddp_note(device) -> str:
    count = torch.cuda.device_count() if device.type == "cuda" else 0
    if count >= 2:
        return f"{count} GPUs: run `bash train/launch.sh` with NPROC=2 for a DDP figure (not automated here)"
    return (f"not run: this machine has {count} CUDA device(s); NCCL needs one GPU per process "
            "(two ranks on one GPU is not a supported NCCL set-up)")


def _train_config(unet, model, objective, optimizer, params, device, dtype, pixels, batch, checkpointing, iters,
                  text_dim, pooled_dim, clip) -> dict:
    latent = pixels // 8
    if checkpointing:
        unet.enable_gradient_checkpointing()
    else:
        unet.disable_gradient_checkpointing()
    row = {"pixels": pixels, "latent": latent, "gradient_checkpointing": checkpointing, "asked_batch": batch}
    while batch >= 1:
        try:
            row.update(_train_steps(model, objective, optimizer, params, device, dtype, batch, latent, iters,
                                    text_dim, pooled_dim, clip))
            row["batch"] = batch
            return row
        except torch.OutOfMemoryError:
            row.setdefault("out_of_memory_at_batch", []).append(batch)
            optimizer.zero_grad(set_to_none=True)
            free(device)
            batch //= 2
    row["error"] = "out of memory at batch 1"
    return row


def _train_steps(model, objective, optimizer, params, device, dtype, batch, latent, iters, text_dim, pooled_dim, clip) -> dict:
    gen = torch.Generator(device).manual_seed(0)
    cond = {"latent_mean": torch.randn(batch, 4, latent, latent, device=device, generator=gen),
            "latent_std": torch.rand(batch, 4, latent, latent, device=device, generator=gen) * 0.1,
            "prompt_embeds": torch.randn(batch, 77, text_dim, device=device, generator=gen),
            "pooled": torch.randn(batch, pooled_dim, device=device, generator=gen),
            "time_ids": torch.tensor([[latent * 8.0, latent * 8.0, 0, 0, latent * 8.0, latent * 8.0]] * batch, device=device)}
    free(device)
    base = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, losses = [], []
    for i in range(iters + 2):  # the loop's step: loss, backward, clip, AdamW, zero_grad
        def step(i=i):
            loss = objective.loss(model, cond, torch.Generator(device).manual_seed(i), dtype)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach())

        ms = time_call(step, device)
        if i >= 2:
            times.append(ms)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    values = torch.stack(losses).float().cpu()
    return {"step_ms": stats(times), "samples_per_s": round(batch / (statistics.median(times) / 1e3), 2),
            "peak_allocated_gib": round(peak / 2**30, 2), "peak_above_weights_gib": round((peak - base) / 2**30, 2),
            "loss_finite": bool(torch.isfinite(values).all())}


# ----------------------------------------------------------------------------------------------- generate
def part_generate(args, device) -> dict:
    from gpu_pipelines import measure_generate

    return measure_generate(args, device)


PARTS = {"tests": part_tests, "overhead": part_overhead, "compile": part_compile, "train": part_train,
         "generate": part_generate}
