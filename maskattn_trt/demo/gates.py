"""Demo stage: put the shipped trained gates on the tiny UNet and show what they change and cost."""

from __future__ import annotations

import time

from ..gates import gate_installation, load_gates, set_gates_open
from ..runners import EagerRunner
from ..spec import UNetIOSpec


def _timed(runner, feed, repeats: int = 3):
    out = runner.infer(feed)
    start = time.perf_counter()
    for _ in range(repeats):
        runner.infer(feed)
    return out, (time.perf_counter() - start) / repeats


def demo_stage(state) -> list[str]:
    unet = state.pipe.unet
    spec = UNetIOSpec.for_unet(unet)
    feed = spec.dummy_inputs(2, 32, 32, seed=state.seed)
    with EagerRunner(unet, spec) as runner:
        stock, stock_s = _timed(runner, feed)

    load_gates(unet, state.shipped_gates)
    installation = gate_installation(unet)
    set_gates_open(unet, True)
    with EagerRunner(unet, spec) as runner:
        opened = runner.infer(feed)["noise_pred"]
    set_gates_open(unet, False)
    with EagerRunner(unet, spec) as runner:
        gated, gated_s = _timed(runner, feed)
    state.gates_path = state.shipped_gates
    config = installation.config
    return [
        f"loaded {state.shipped_gates} onto {len(installation.sites)} cross-attention sites (stage={config.stage}, "
        f"placement={config.placement}, {len(set(installation.head_of_site.values()))} shared heads, "
        f"threshold {config.threshold})",
        f"gates forced open: max |gated - stock| = {(opened - stock['noise_pred']).abs().max().item():.2e} "
        "(the gate is exactly a no-op when open)",
        f"trained gates: max |gated - stock| = {(gated['noise_pred'] - stock['noise_pred']).abs().max().item():.3f} "
        "on a random-latent feed",
        f"eager forward (2x4x32x32): stock {stock_s * 1e3:.1f} ms, gated {gated_s * 1e3:.1f} ms "
        f"(x{gated_s / stock_s:.2f})",
    ]
