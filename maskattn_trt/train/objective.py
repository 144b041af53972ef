"""The training objective: frozen encoders -> noised latents -> UNet -> (min-SNR weighted) MSE.

The UNet predicts the scheduler's target (``epsilon`` = the noise, ``v_prediction`` = the velocity
sqrt(a) * noise - sqrt(1 - a) * x0), with the DDPM forward process of the pipeline's scheduler config.
All randomness (VAE sampling, noise, timesteps) comes from a generator passed in, so a step is a pure
function of (gate weights, batch, generator seed): this is what makes resuming exact.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError


@torch.no_grad()
def encode_images(vae, pixels: Tensor) -> tuple[Tensor, Tensor]:
    """Pixels [B, 3, H, W] in [-1, 1] -> VAE posterior (mean, std), fp32."""
    vae_dtype = next(vae.parameters()).dtype
    posterior = vae.encode(pixels.to(device=vae.device, dtype=vae_dtype)).latent_dist
    return posterior.mean.float(), posterior.std.float()


@torch.no_grad()
def encode_captions(pipe, captions: list[str], device) -> tuple[Tensor, Tensor]:
    """Captions -> (prompt_embeds [B, 77, D], pooled text embeds [B, P]) with both SDXL text encoders."""
    prompt_embeds, _, pooled, _ = pipe.encode_prompt(
        prompt=list(captions), device=device, num_images_per_prompt=1, do_classifier_free_guidance=False
    )
    return prompt_embeds, pooled


def sample_latents(mean: Tensor, std: Tensor, scaling_factor: float, generator: torch.Generator) -> Tensor:
    noise = torch.randn(mean.shape, generator=generator, device=generator.device, dtype=torch.float32)
    return (mean + std * noise.to(mean.device)) * scaling_factor


class Objective:
    """Builds the UNet inputs of a batch and computes the loss."""

    def __init__(self, scheduler_config, prediction_type: str = "auto", min_snr_gamma: float = 0.0,
                 scaling_factor: float = 0.13025):
        from diffusers import DDPMScheduler

        self.scheduler = DDPMScheduler.from_config(scheduler_config)
        configured = self.scheduler.config.prediction_type
        self.prediction_type = configured if prediction_type == "auto" else prediction_type
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ConfigError(
                f"the scheduler predicts {self.prediction_type!r}; gate training supports epsilon and v_prediction "
                "(set train.prediction_type)"
            )
        self.min_snr_gamma = float(min_snr_gamma)
        self.scaling_factor = float(scaling_factor)
        self.timesteps = int(self.scheduler.config.num_train_timesteps)

    def conditioning(self, pipe, batch: dict, device) -> dict[str, Tensor]:
        """Latent posterior, text embeddings and time_ids of a batch (from the cache when it holds them)."""
        if "latent_mean" in batch:
            return {key: batch[key].to(device) for key in ("latent_mean", "latent_std", "prompt_embeds", "pooled", "time_ids")}
        mean, std = encode_images(pipe.vae, batch["pixel_values"])
        prompt_embeds, pooled = encode_captions(pipe, batch["caption"], device)
        return {"latent_mean": mean.to(device), "latent_std": std.to(device), "prompt_embeds": prompt_embeds,
                "pooled": pooled, "time_ids": batch["time_ids"].to(device)}

    def snr(self, timesteps: Tensor) -> Tensor:
        alphas = self.scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()
        return alphas / (1.0 - alphas)

    def loss(self, model: nn.Module, cond: dict[str, Tensor], generator: torch.Generator, dtype: torch.dtype) -> Tensor:
        """Mean over the batch of the (weighted) per-sample MSE, in fp32."""
        device = cond["latent_mean"].device
        latents = sample_latents(cond["latent_mean"], cond["latent_std"], self.scaling_factor, generator)
        batch = latents.shape[0]
        noise = torch.randn(latents.shape, generator=generator, device=generator.device).to(device)
        timesteps = torch.randint(0, self.timesteps, (batch,), generator=generator, device=generator.device).to(device)
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        if self.prediction_type == "epsilon":
            target = noise
        else:
            target = self.scheduler.get_velocity(latents, noise, timesteps)
        pred = model(noisy.to(dtype), timesteps, cond["prompt_embeds"].to(dtype), cond["pooled"].to(dtype),
                     cond["time_ids"].to(dtype))
        per_sample = (pred.float() - target.float()).pow(2).mean(dim=(1, 2, 3))
        if self.min_snr_gamma > 0:
            snr = self.snr(timesteps)
            weight = torch.clamp(snr, max=self.min_snr_gamma)
            weight = weight / snr if self.prediction_type == "epsilon" else weight / (snr + 1.0)
            per_sample = per_sample * weight
        return per_sample.mean()


def gate_mask_loss(logits: dict[str, Tensor], masks: Tensor, object_tokens: Tensor) -> Tensor:
    """The mask-supervision loss (``train.mask_weight``): binary cross-entropy of the gate logits against the
    targets of :func:`maskattn_trt.world.token_targets`, averaged over gated sites.

    Per site: for colour / shape word tokens, the BCE averaged inside their object and outside it separately
    and the two halves weighted equally (an object covers ~5-20 % of the image: unbalanced, "closed everywhere"
    would be nearly optimal); averaged over those tokens; plus, for every other token, the BCE against "open
    everywhere" averaged over positions and tokens.

    ``logits``: site -> [B, N, T] from :func:`maskattn_trt.gates.kept_gate_logits`; ``masks`` [B, T', S, S] in
    [0, 1] (T' >= T); ``object_tokens`` [B, T'] bool. A site whose grid is coarser than S x S compares with the
    masks area-averaged to its grid, a finer one with them nearest-upsampled; maps are square (training crops are).
    """
    if not logits:
        raise ConfigError("train.mask_weight: no gate logits were kept (are gates installed and not forced open?)")
    tokens = next(iter(logits.values())).shape[-1]
    masks = masks[:, :tokens].float()
    obj = object_tokens[:, :tokens].float()  # [B, T]
    other = 1.0 - obj
    total = masks.new_zeros(())
    for site, z in logits.items():
        side = math.isqrt(z.shape[1])
        if side * side != z.shape[1]:
            raise ConfigError(f"train.mask_weight needs square latent maps; {site} has {z.shape[1]} positions")
        if side < masks.shape[-1]:
            grid = F.adaptive_avg_pool2d(masks, side)
        elif side > masks.shape[-1]:
            grid = F.interpolate(masks, size=(side, side), mode="nearest")
        else:
            grid = masks
        target = grid.flatten(2).transpose(1, 2)  # [B, N, T]
        bce = F.binary_cross_entropy_with_logits(z.float(), target, reduction="none")
        area_in, area_out = target.sum(1), (1 - target).sum(1)  # [B, T]
        inside = (bce * target).sum(1) / area_in.clamp_min(1e-6)
        outside = (bce * (1 - target)).sum(1) / area_out.clamp_min(1e-6)
        has_in, has_out = (area_in > 0).float(), (area_out > 0).float()  # an object may fill, or miss, the map
        word = (inside * has_in + outside * has_out) / (has_in + has_out).clamp_min(1.0)
        total = total + (word * obj).sum() / obj.sum().clamp_min(1.0)
        total = total + (bce.mean(1) * other).sum() / other.sum().clamp_min(1.0)
    return total / len(logits)


class GatedDenoiser(nn.Module):
    """The frozen UNet with its gates, called with flat tensors (the module DDP wraps)."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, prompt_embeds, pooled, time_ids):
        return self.unet(sample, timestep, encoder_hidden_states=prompt_embeds,
                         added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample


@torch.no_grad()
def evaluation_loss(objective: Objective, model: nn.Module, cond: dict[str, Tensor], seed: int = 0,
                    draws: int = 4, dtype: torch.dtype = torch.float32) -> float:
    """Loss of a fixed batch under ``draws`` fixed noise / timestep draws (a low-variance progress probe)."""
    device = cond["latent_mean"].device
    total = 0.0
    for draw in range(draws):
        generator = torch.Generator(device).manual_seed(seed * 7_919 + draw)
        total += objective.loss(model, cond, generator, dtype).item()
    return total / draws
