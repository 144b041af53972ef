"""fp16 gate heads (for SM75 / Turing engines) against fp32 heads, in eager PyTorch (GPU, or CPU).

Builds an SDXL-architecture UNet (random weights: none can be downloaded here; use --model PATH for a real
one), installs gates with trained-looking random heads, and compares, at 1024 px with random latents and text
embeddings: fp16 backbone + fp16 heads, and fp16 backbone + fp32 heads, against an fp32 reference (gate
agreement, noise_pred rel L2) and against each other.

    python bench/gate_heads_fp16.py --preset sdxl --latent 128 --batch 2 --stage mid
"""

from __future__ import annotations

import argparse
import copy
import json

import torch

from maskattn_trt import GateConfig, install_gates
from maskattn_trt.export import cast_unet
from maskattn_trt.gates import gate_heads, recorded_gates, set_gate_recording
from maskattn_trt.spec import UNetIOSpec


def run(unet, feed):
    set_gate_recording(unet, True)
    with torch.no_grad():
        out = unet(feed["sample"], feed["timestep"], encoder_hidden_states=feed["encoder_hidden_states"],
                   added_cond_kwargs={"text_embeds": feed["text_embeds"], "time_ids": feed["time_ids"]}).sample
    gates = {k: v.clone() for k, v in recorded_gates(unet).items()}
    set_gate_recording(unet, False)
    return out.float(), gates


def compare(a, b):
    (oa, ga), (ob, gb) = a, b
    agree = sum((ga[k] == gb[k]).sum().item() for k in ga) / sum(ga[k].numel() for k in ga)
    rel = ((oa - ob).norm() / oa.norm()).item()
    return {"gate_agreement": agree, "rel_l2": rel, "max_abs": (oa - ob).abs().max().item()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="sdxl")
    parser.add_argument("--latent", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--stage", default="mid")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    from maskattn_trt.models import build_unet

    device = args.device
    ref = build_unet(args.preset, seed=0).to(device)
    install_gates(ref, GateConfig(stage=args.stage))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for head in gate_heads(ref).values():
            for name, p in head.named_parameters():
                noise = torch.randn(p.shape, generator=gen)
                if p.ndim == 2:
                    p.copy_(noise * p.shape[1] ** -0.5 * 2.0)
                elif p.ndim == 1:
                    p.copy_(noise * 0.2 + (1.0 if name.endswith("0.weight") else 0.0))
            head.logit_bias.fill_(-0.5)
    heads32 = cast_unet(copy.deepcopy(ref), "fp16", gate_heads="fp32")
    heads16 = cast_unet(copy.deepcopy(ref), "fp16", gate_heads="fp16")
    spec = UNetIOSpec.for_unet(ref)
    rows = []
    for seed in range(args.seeds):
        feed = spec.dummy_inputs(args.batch, args.latent, args.latent, seed=seed, device=device)
        half = {k: (v.half() if k != "timestep" else v) for k, v in feed.items()}
        r32 = run(ref, feed)
        a, b = run(heads32, half), run(heads16, half)
        rows.append({"seed": seed, "fp16+heads32 vs fp32": compare(r32, a), "fp16+heads16 vs fp32": compare(r32, b),
                     "heads16 vs heads32 (fp16 backbone)": compare(a, b),
                     "open_fraction": sum(g.sum().item() for g in r32[1].values())
                     / sum(g.numel() for g in r32[1].values())})
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"preset": args.preset, "latent": args.latent, "batch": args.batch, "stage": args.stage,
                      "device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "rows": rows}))


if __name__ == "__main__":
    main()
