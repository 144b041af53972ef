"""The training objective: frozen encoders -> noised latents -> UNet -> (min-SNR weighted) MSE.

The UNet predicts the scheduler's target (``epsilon`` = the noise, ``v_prediction`` = the velocity
sqrt(a) * noise - sqrt(1 - a) * x0), with the DDPM forward process of the pipeline's scheduler config.
All randomness (VAE sampling, noise, timesteps) comes from a generator passed in, so a step is a pure
function of (gate weights, batch, generator seed): this is what makes resuming exact.
"""

from __future__ import annotations

import torch
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
