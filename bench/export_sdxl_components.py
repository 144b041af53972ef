"""Export (and optionally AOT-build) one full-size SDXL text encoder or the VAE decoder: the real architectures
(CLIP ViT-L/14 text model, OpenCLIP bigG/14 text model with projection, the SDXL VAE) with random weights.

Measures wall time, peak RSS and sizes. One component per process (so peak RSS is that component's); run it
under the heavy-job lock:

    flock /tmp/maskattn-heavy.lock python bench/export_sdxl_components.py --component text_encoder_2 \\
        --out /tmp/sdxl_components --build
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

# Public architecture facts of SDXL base 1.0's text encoders and VAE (their config.json files).
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768, bos_token_id=49406,
              eos_token_id=49407, pad_token_id=1)
CLIP_BIGG = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                 num_attention_heads=20, max_position_embeddings=77, hidden_act="gelu", projection_dim=1280,
                 bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
SDXL_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[128, 256, 512, 512],
                down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                layers_per_block=2, norm_num_groups=32, sample_size=1024, scaling_factor=0.13025, force_upcast=True)


def build(component: str):
    import torch

    torch.manual_seed(0)
    if component == "vae_decoder":
        from diffusers import AutoencoderKL

        return AutoencoderKL(**SDXL_VAE).eval()
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    if component == "text_encoder":
        return CLIPTextModel(CLIPTextConfig(**CLIP_L)).eval()
    return CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_BIGG)).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--component", required=True, choices=["text_encoder", "text_encoder_2", "vae_decoder"])
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "fp16"])
    parser.add_argument("--out", default="/tmp/sdxl_components")
    parser.add_argument("--batch", default="1:1:2")
    parser.add_argument("--pixels", default="512:1024:1024", help="VAE height/width range in pixels")
    parser.add_argument("--build", action="store_true", help="also build a TensorRT-RTX engine (SM89)")
    args = parser.parse_args()

    import torch

    from maskattn_trt.component_spec import TextEncoderIOSpec, VaeDecoderIOSpec
    from maskattn_trt.export.components import export_component
    from maskattn_trt.export.from_model import resolve_spec

    torch.set_num_threads(2)
    start = time.perf_counter()
    module = build(args.component).to(getattr(torch, {"fp32": "float32", "fp16": "float16"}[args.dtype]))
    built = time.perf_counter() - start
    if args.component == "vae_decoder":
        base = VaeDecoderIOSpec.for_vae(module, dtype=args.dtype)
    else:
        base = TextEncoderIOSpec.for_encoder(args.component, module, dtype=args.dtype)
    spec = resolve_spec(base, args.batch, args.pixels, args.pixels, False)
    folder = Path(args.out) / f"{args.component}_{args.dtype}"
    result = export_component(module, folder, spec, source={"model": "sdxl-architecture-random", "seed": 0})
    del module
    report = {"component": args.component, "dtype": args.dtype, "build_module_s": round(built, 1),
              "export_s": round(result.seconds, 1), "nodes": result.manifest["graph"]["nodes"],
              "files_mb": {k: round(v["bytes"] / 1e6, 1) for k, v in result.manifest["files"].items()},
              "fp16_decode_check": result.manifest.get("fp16_decode_check"),
              "peak_rss_gib_after_export": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}
    if args.build:
        from maskattn_trt.engines.build import BuildOptions, build_engine

        engine = build_engine(BuildOptions(onnx=folder, out=folder.with_suffix(".sm89.engine"), builder="tensorrt-rtx",
                                           progress=False))
        report.update(build_s=round(engine.seconds, 1), engine_mib=round(engine.manifest.engine_bytes / 2**20, 1),
                      peak_rss_gib_after_build=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
