"""An SDXL pipeline built in-process with tiny random weights (no network), and UNet size presets.

The tiny UNet keeps SDXL's topology (DownBlock2D + two CrossAttnDownBlock2D, a cross-attention mid block,
mirrored up blocks, ``text_time`` added conditioning, two text encoders whose hidden states are
concatenated), so every gate stage (high, mid, low) exists, just with a few channels.
"""

from __future__ import annotations

import copy
from importlib import resources

import torch

# The stock SDXL base 1.0 UNet configuration (public facts: 2.57 B parameters, 70 cross-attention layers).
SDXL_UNET_CONFIG: dict = {
    "act_fn": "silu",
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280],
    "cross_attention_dim": 2048,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "in_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 4,
    "projection_class_embeddings_input_dim": 2816,
    "sample_size": 128,
    "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "use_linear_projection": True,
}

_TINY_TEXT = {"hidden_size": 32, "projection_dim": 32}
_TINY_UNET = {
    **SDXL_UNET_CONFIG,
    "addition_time_embed_dim": 8,
    "attention_head_dim": [2, 2, 4],
    "block_out_channels": [32, 32, 64],
    "cross_attention_dim": 64,  # = 32 (text encoder 1) + 32 (text encoder 2), as SDXL concatenates them
    "norm_num_groups": 8,
    "projection_class_embeddings_input_dim": 6 * 8 + 32,
    "sample_size": 32,
    "transformer_layers_per_block": [1, 1, 2],
}
# A mid-size SDXL-shaped UNet for benchmarks: SDXL's topology at 1/5 of its channels and fewer layers.
_SMALL_UNET = {
    **SDXL_UNET_CONFIG,
    "addition_time_embed_dim": 32,
    "attention_head_dim": [2, 4, 8],
    "block_out_channels": [64, 128, 256],
    "cross_attention_dim": 2048,
    "projection_class_embeddings_input_dim": 6 * 32 + 1280,
    "transformer_layers_per_block": [1, 2, 4],
}

TINY_VAE_SCALE = 2  # the tiny offline VAE has two blocks

UNET_PRESETS: dict[str, dict] = {"tiny-random": _TINY_UNET, "small": _SMALL_UNET, "sdxl": SDXL_UNET_CONFIG}


def build_unet(preset: str = "tiny-random", seed: int = 0, device: str | torch.device = "cpu"):
    """A randomly initialised SDXL-shaped UNet2DConditionModel from a preset (``tiny-random``, ``small``, ``sdxl``).

    ``device="meta"`` builds the architecture without allocating weights (the real SDXL config included).
    """
    from diffusers import UNet2DConditionModel

    config = copy.deepcopy(UNET_PRESETS[preset])
    if str(device) == "meta":
        with torch.device("meta"):
            return UNet2DConditionModel(**config)
    torch.manual_seed(seed)
    return UNet2DConditionModel(**config).to(device).eval()


def tiny_tokenizer():
    """CLIP tokenizer over the small vocabulary shipped with the package (whole words for common captions)."""
    from transformers import CLIPTokenizer

    vocab = resources.files("maskattn_trt.models") / "vocab"
    with resources.as_file(vocab / "vocab.json") as v, resources.as_file(vocab / "merges.txt") as m:
        return CLIPTokenizer(str(v), str(m), model_max_length=77)


def _text_encoders(vocab_size: int, seed: int):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    common = dict(
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        hidden_size=_TINY_TEXT["hidden_size"],
        intermediate_size=37,
        layer_norm_eps=1e-5,
        num_attention_heads=4,
        num_hidden_layers=5,
        vocab_size=vocab_size,
        hidden_act="gelu",
        projection_dim=_TINY_TEXT["projection_dim"],
        max_position_embeddings=77,
    )
    torch.manual_seed(seed + 1)
    encoder = CLIPTextModel(CLIPTextConfig(**common)).eval()
    torch.manual_seed(seed + 2)
    encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**common)).eval()
    return encoder, encoder_2


def _vae(seed: int):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed + 3)
    return AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=32,
        sample_size=64,
        scaling_factor=0.13025,
    ).eval()


def tiny_sdxl_pipeline(seed: int = 0):
    """A real diffusers ``StableDiffusionXLPipeline`` with tiny random weights, built offline.

    Latents are 4 x (H/2) x (W/2) (the tiny VAE downsamples by 2); the UNet runs at any latent size that is a
    multiple of 4. Deterministic for a given ``seed``.
    """
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    tokenizer = tiny_tokenizer()
    encoder, encoder_2 = _text_encoders(len(tokenizer), seed)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
        timestep_spacing="leading",
        prediction_type="epsilon",
    )
    pipe = StableDiffusionXLPipeline(
        vae=_vae(seed),
        text_encoder=encoder,
        text_encoder_2=encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tiny_tokenizer(),
        unet=build_unet("tiny-random", seed),
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
