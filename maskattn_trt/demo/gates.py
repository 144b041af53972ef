"""Demo stage: install gates on the tiny UNet and show what they do."""

from __future__ import annotations

import time

from ..config import GateConfig
from ..gates import install_gates, randomize_gates, save_gates, set_gates_open
from ..runners import EagerRunner
from ..spec import GATE_PREFIX, UNetIOSpec


def demo_stage(state) -> list[str]:
    unet = state.pipe.unet
    spec = UNetIOSpec.for_unet(unet)
    feed = spec.dummy_inputs(2, 32, 32, seed=state.seed)
    with EagerRunner(unet, spec) as runner:
        stock = runner.infer(feed)["noise_pred"]
        t0 = time.perf_counter()
        for _ in range(3):
            runner.infer(feed)
        stock_s = (time.perf_counter() - t0) / 3

    installation = install_gates(unet, GateConfig())
    set_gates_open(unet, True)
    with EagerRunner(unet, spec) as runner:
        opened = runner.infer(feed)["noise_pred"]
    set_gates_open(unet, False)
    randomize_gates(unet, state.seed)
    gated_spec = spec.with_gate_outputs(list(installation.sites))
    with EagerRunner(unet, gated_spec) as runner:
        out = runner.infer(feed)
        t0 = time.perf_counter()
        for _ in range(3):
            runner.infer(feed)
        gated_s = (time.perf_counter() - t0) / 3
    state.gates_path = save_gates(unet, state.out_dir / "gates_random.safetensors")

    lines = [
        f"gated {len(installation.sites)} cross-attention sites (stage={installation.config.stage}, "
        f"placement={installation.config.placement}, {len(set(installation.head_of_site.values()))} shared heads)",
        f"gates open: max |gated - stock| = {(opened - stock).abs().max().item():.2e}",
        f"trained-looking gates: max |gated - stock| = {(out['noise_pred'] - stock).abs().max().item():.3f}",
        "open fraction per site (share of (position, token) pairs let through):",
    ]
    for site in installation.sites:
        gate = out[GATE_PREFIX + site]
        lines.append(f"  {site:<55} {gate.mean().item():.3f}")
    lines.append(f"eager forward (2x4x32x32): stock {stock_s * 1e3:.1f} ms, gated {gated_s * 1e3:.1f} ms "
                 f"(x{gated_s / stock_s:.2f})")
    lines.append(f"saved gates to {state.gates_path}")
    return lines
