"""Train the tiny SDXL-shaped base model from scratch on the synthetic world: the VAE, then the UNet.

The paper's experiment needs a text-to-image model that draws what it is told; SDXL's weights cannot be
downloaded here, so this trains one in miniature on :mod:`maskattn_trt.world` (coloured shapes, relations,
held-out combinations never drawn for training):

1. **VAE**: a diffusers ``AutoencoderKL`` (3 blocks: 128 px -> 4 x 32 x 32 latents) trained as an autoencoder
   (L1 + MSE reconstruction, a small KL term); its latent scaling factor is set from the data (1 / std).
2. **Text**: SDXL's two CLIP text encoders of the tiny pipeline stay frozen with their seeded random weights;
   the tokenizer gains whole-word tokens for the world's shapes (the shipped vocabulary splits "circle" into
   four pieces), whose embedding rows are drawn from the same seeded initialisation.
3. **UNet**: the tiny SDXL-topology UNet (``text_time`` conditioning, cross-attention at every gate stage)
   trained from scratch as a latent diffusion model: epsilon prediction on SDXL's scaled-linear schedule,
   min-SNR loss weights, 10 % of captions dropped to the empty prompt's zero embeddings (classifier-free
   guidance, as ``force_zeros_for_empty_prompt`` samples it), an EMA of the weights is what ships.

No augmentation flips the images: a flip would swap "left of" and "right of". Everything is deterministic for
the recipe (data, initialisation, batches, noise). The result is a diffusers SDXL folder (``--model PATH`` in
every command) plus ``weights_manifest.json`` (sha256 of each file, recipe, steps, seeds, data version, times,
losses). The run stops at ``train.max_minutes`` with what it has (EMA weights of the last step), so a time
limit always leaves a usable model.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import tomllib
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

from ..errors import ConfigError
from ..models.loading import load_pipeline
from ..models.tiny import UNET_PRESETS, tiny_sdxl_pipeline
from ..spec import time_ids
from ..utils.io import sha256_file, write_json_atomic
from ..world import SHAPES, make_scene, render

DATA_VERSION = "world-1"  # bump when the world's scenes or rendering change
MODEL_DIR = "model"
MANIFEST_NAME = "weights_manifest.json"


@dataclass(frozen=True)
class BaseRecipe:
    """Every knob of the base-model run; TOML section ``[s]`` key ``k`` sets field ``s_k``."""

    data_size: int = 128  # pixels
    data_samples: int = 16384  # distinct training scenes, rendered once
    data_seed: int = 0
    vae_channels: tuple[int, ...] = (16, 32, 32)  # 3 blocks: latents are size / 4
    vae_steps: int = 1500
    vae_batch: int = 16
    vae_lr: float = 1e-3
    vae_kl_weight: float = 1e-6
    unet_channels: tuple[int, ...] = (32, 32, 64)  # the tiny preset's widths
    unet_heads: tuple[int, ...] = (2, 2, 4)
    unet_steps: int = 12000
    unet_batch: int = 16
    unet_lr: float = 5e-4
    unet_warmup: int = 200
    unet_ema_decay: float = 0.999
    unet_cond_dropout: float = 0.1
    unet_snr_gamma: float = 5.0
    train_seed: int = 0
    train_threads: int = 2
    train_max_minutes: float = 0.0  # 0: no limit
    train_log_every: int = 100


def load_base_recipe(path: str | Path | None = None, overrides: tuple[str, ...] | list[str] = ()) -> BaseRecipe:
    """Recipe from a TOML file and ``section.key=value`` overrides; an unknown key or a wrong type is named."""
    values: dict[str, object] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read base recipe {path}: {exc}") from exc
        for section, table in data.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: top-level key {section!r} must be a [section]")
            for key, value in table.items():
                values[f"{section}_{key}"] = value
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"override {item!r} must look like section.key=value (e.g. unet.steps=200)")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        values[key.replace(".", "_", 1)] = value
    known = {f.name: f for f in fields(BaseRecipe)}
    defaults = BaseRecipe()
    clean: dict[str, object] = {}
    for name, value in values.items():
        if name not in known:
            dotted = name.replace("_", ".", 1)
            raise ConfigError(f"unknown base recipe key {dotted!r}; known: "
                              + ", ".join(sorted(k.replace("_", ".", 1) for k in known)))
        default = getattr(defaults, name)
        if isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, int) and v > 0 for v in value):
                raise ConfigError(f"base recipe {name.replace('_', '.', 1)} must be a list of positive integers; "
                                  f"got {value!r}")
            value = tuple(value)
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif type(value) is not type(default):
            raise ConfigError(f"base recipe {name.replace('_', '.', 1)} must be {type(default).__name__}; "
                              f"got {value!r}")
        clean[name] = value
    recipe = replace(defaults, **clean)
    if recipe.data_size % (2 ** (len(recipe.vae_channels) - 1) * 4):
        raise ConfigError(f"data.size {recipe.data_size} must be a multiple of 4 x the VAE's downsampling "
                          f"({2 ** (len(recipe.vae_channels) - 1)})")
    return recipe


def render_data(recipe: BaseRecipe) -> tuple[torch.Tensor, list[str]]:
    """The training scenes rendered once: uint8 [N, 3, S, S] and their captions (split ``train`` only)."""
    images = torch.empty(recipe.data_samples, 3, recipe.data_size, recipe.data_size, dtype=torch.uint8)
    captions = []
    for index in range(recipe.data_samples):
        scene = make_scene(index, seed=recipe.data_seed, size=recipe.data_size, split="train")
        images[index] = torch.from_numpy(np.array(render(scene))).permute(2, 0, 1)
        captions.append(scene.caption)
    return images, captions


def _pixels(images: torch.Tensor) -> torch.Tensor:
    return images.float().div(127.5).sub(1.0)


def build_vae(recipe: BaseRecipe, seed: int) -> AutoencoderKL:
    torch.manual_seed(seed)
    blocks = len(recipe.vae_channels)
    return AutoencoderKL(
        block_out_channels=list(recipe.vae_channels), in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=["DownEncoderBlock2D"] * blocks, up_block_types=["UpDecoderBlock2D"] * blocks,
        norm_num_groups=min(32, *recipe.vae_channels), sample_size=recipe.data_size, scaling_factor=1.0,
    )


def build_unet(recipe: BaseRecipe, seed: int) -> UNet2DConditionModel:
    config = copy.deepcopy(UNET_PRESETS["tiny-random"])
    config.update(block_out_channels=list(recipe.unet_channels), attention_head_dim=list(recipe.unet_heads),
                  sample_size=recipe.data_size // 2 ** (len(recipe.vae_channels) - 1))
    torch.manual_seed(seed)
    return UNet2DConditionModel(**config)


def _lr(step: int, base: float, warmup: int, total: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))  # cosine to 10 %


class _Clock:
    def __init__(self, minutes: float):
        self.start = time.perf_counter()
        self.limit = minutes * 60 if minutes > 0 else math.inf

    def out_of_time(self) -> bool:
        return time.perf_counter() - self.start > self.limit


def train_vae(vae: AutoencoderKL, images: torch.Tensor, recipe: BaseRecipe, clock: _Clock, log) -> dict:
    gen = torch.Generator().manual_seed(recipe.train_seed + 11)
    opt = torch.optim.AdamW(vae.parameters(), lr=recipe.vae_lr, weight_decay=0.0)
    vae.train()
    losses, step, started = [], 0, time.perf_counter()
    for step in range(recipe.vae_steps):
        for group in opt.param_groups:
            group["lr"] = _lr(step, recipe.vae_lr, 50, recipe.vae_steps)
        x = _pixels(images[torch.randint(len(images), (recipe.vae_batch,), generator=gen)])
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=gen)
        rec = vae.decode(z).sample
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + recipe.vae_kl_weight * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if (step + 1) % recipe.train_log_every == 0:
            log(f"vae step {step + 1}/{recipe.vae_steps} loss {np.mean(losses[-recipe.train_log_every:]):.4f}")
        if clock.out_of_time():
            log(f"vae: time limit reached at step {step + 1}")
            break
    vae.eval()
    return {"steps": step + 1, "seconds": round(time.perf_counter() - started, 1),
            "loss_last_100": float(np.mean(losses[-100:]))}


@torch.no_grad()
def encode_latents(vae: AutoencoderKL, images: torch.Tensor, batch: int = 128, rescale: bool = True) -> torch.Tensor:
    """Posterior means of every image, scaled by the VAE's ``scaling_factor``; with ``rescale`` the factor is
    first set from the data (1 / std, so the latents have unit std)."""
    latents = torch.cat([vae.encode(_pixels(images[i:i + batch])).latent_dist.mean
                         for i in range(0, len(images), batch)])
    if rescale:
        vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    return latents * vae.config.scaling_factor


@torch.no_grad()
def collapse_posterior(vae: AutoencoderKL, logvar: float = -30.0) -> None:
    """Make the encoder's posterior a point mass at its mean (log-variance ``logvar``, the floor diffusers
    clamps to): the UNet trains on posterior means, and with the tiny KL weight the learned posterior std is
    ~1 in scaled units, so a trainer that samples latents (``maskattn-trt train`` does, as SDXL's recipe does)
    would see noise the UNet never saw. The mean, and so every encode-decode, is unchanged."""
    channels = vae.config.latent_channels
    vae.quant_conv.weight[channels:] = 0.0
    vae.quant_conv.bias[channels:] = logvar


def add_shape_tokens(pipe, seed: int) -> list[str]:
    """Whole-word tokens for the world's shapes in both tokenizers; new embedding rows seeded (CLIP's init)."""
    added = [word for word in SHAPES if len(pipe.tokenizer.tokenize(word)) > 1]
    if not added:
        return []
    for offset, (tokenizer, encoder) in enumerate(((pipe.tokenizer, pipe.text_encoder),
                                                   (pipe.tokenizer_2, pipe.text_encoder_2))):
        tokenizer.add_tokens(added)
        torch.manual_seed(seed + 101 + offset)
        encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return added


@torch.no_grad()
def encode_captions(pipe, captions: list[str], batch: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(prompt embeddings [U, 77, D], pooled [U, P], index of each caption's row) over the unique captions."""
    unique = sorted(set(captions))
    row = {caption: i for i, caption in enumerate(unique)}
    embeds, pooled = [], []
    for i in range(0, len(unique), batch):
        e, _, p, _ = pipe.encode_prompt(unique[i:i + batch], device="cpu", num_images_per_prompt=1,
                                        do_classifier_free_guidance=False)
        embeds.append(e)
        pooled.append(p)
    return torch.cat(embeds), torch.cat(pooled), torch.tensor([row[c] for c in captions])


def _noise_scheduler(pipe) -> DDPMScheduler:
    config = pipe.scheduler.config
    return DDPMScheduler(beta_start=config.beta_start, beta_end=config.beta_end, beta_schedule=config.beta_schedule,
                         num_train_timesteps=config.num_train_timesteps, prediction_type="epsilon")


def train_unet(unet: UNet2DConditionModel, ema: UNet2DConditionModel, pipe, latents: torch.Tensor,
               text: tuple[torch.Tensor, torch.Tensor, torch.Tensor], recipe: BaseRecipe, clock: _Clock, log) -> dict:
    embeds, pooled, rows = text
    scheduler = _noise_scheduler(pipe)
    alphas = scheduler.alphas_cumprod
    snr_all = alphas / (1 - alphas)
    gen = torch.Generator().manual_seed(recipe.train_seed + 23)
    opt = torch.optim.AdamW(unet.parameters(), lr=recipe.unet_lr, weight_decay=0.01)
    tids = time_ids(recipe.data_size, recipe.data_size, recipe.unet_batch)
    ema_params = list(ema.parameters())
    unet.train()
    losses, step, started = [], 0, time.perf_counter()
    for step in range(recipe.unet_steps):
        for group in opt.param_groups:
            group["lr"] = _lr(step, recipe.unet_lr, recipe.unet_warmup, recipe.unet_steps)
        idx = torch.randint(len(latents), (recipe.unet_batch,), generator=gen)
        x0 = latents[idx]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(scheduler.config.num_train_timesteps, (recipe.unet_batch,), generator=gen)
        xt = scheduler.add_noise(x0, noise, t)
        keep = (torch.rand(recipe.unet_batch, generator=gen) >= recipe.unet_cond_dropout).float()
        e = embeds[rows[idx]] * keep[:, None, None]
        p = pooled[rows[idx]] * keep[:, None]
        pred = unet(xt, t, e, added_cond_kwargs={"text_embeds": p, "time_ids": tids}).sample
        snr = snr_all[t]
        weight = torch.clamp(snr, max=recipe.unet_snr_gamma) / snr if recipe.unet_snr_gamma > 0 else torch.ones_like(snr)
        loss = (F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3)) * weight).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        decay = min(recipe.unet_ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for e_param, param in zip(ema_params, unet.parameters(), strict=True):
                e_param.lerp_(param, 1 - decay)
        losses.append(loss.item())
        if (step + 1) % recipe.train_log_every == 0:
            rate = (time.perf_counter() - started) / (step + 1)
            log(f"unet step {step + 1}/{recipe.unet_steps} loss {np.mean(losses[-recipe.train_log_every:]):.4f} "
                f"({rate:.2f} s/step)")
        if clock.out_of_time():
            log(f"unet: time limit reached at step {step + 1}")
            break
    unet.eval()
    return {"steps": step + 1, "seconds": round(time.perf_counter() - started, 1),
            "loss_last_500": float(np.mean(losses[-500:]))}


def save_model(pipe, out: Path, record: dict) -> Path:
    """The pipeline as a diffusers folder (safetensors) with its manifest; written beside, then renamed."""
    final = out / MODEL_DIR
    partial = out / f".{MODEL_DIR}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    pipe.save_pretrained(partial, safe_serialization=True)
    files = {str(p.relative_to(partial)): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
             for p in sorted(partial.rglob("*")) if p.is_file()}
    write_json_atomic(partial / MANIFEST_NAME, {**record, "files": files,
                                                "total_bytes": sum(f["bytes"] for f in files.values())})
    if final.exists():  # a model this run wrote earlier (time-limited checkpoints); nothing of the user's
        shutil.rmtree(final)
    partial.rename(final)
    return final


def read_init(init: Path, recipe: BaseRecipe) -> dict:
    """The manifest of the base run ``init`` continues from; its data must be the recipe's data."""
    manifest = init / MANIFEST_NAME
    if not manifest.is_file():
        raise ConfigError(f"--init {init}: expected a train-base model folder with {MANIFEST_NAME}; not found "
                          f"(pass <run>/model of an earlier train-base run)")
    try:
        previous = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--init {init}: cannot read {MANIFEST_NAME} ({exc}); pass an intact train-base model "
                          f"folder") from exc
    theirs = previous.get("recipe", {})
    for key in ("data_size", "data_samples", "data_seed", "unet_channels", "unet_heads", "vae_channels"):
        mine, found = getattr(recipe, key), theirs.get(key)
        if (tuple(found) if isinstance(found, list) else found) != mine:
            raise ConfigError(f"--init {init}: its recipe has {key.replace('_', '.', 1)}={theirs.get(key)!r}, "
                              f"this recipe {mine!r}; a continued run must train the same model on the same data")
    if previous.get("data_version") != DATA_VERSION:
        raise ConfigError(f"--init {init}: trained on data {previous.get('data_version')!r}, this version renders "
                          f"{DATA_VERSION!r}; train from scratch instead")
    return {key: value for key, value in previous.items() if key != "files"}


def train_base(recipe: BaseRecipe, out: Path, log=print, init: Path | None = None) -> Path:
    """The whole run: data, VAE, latents, text embeddings, UNet; returns the saved model folder.

    ``init``: the model folder of an earlier run with the same model and data; its VAE and text encoders are
    kept and its (EMA) UNet is trained further for ``unet.steps`` steps (a fresh optimizer, warm-up and cosine
    schedule); the manifest records the earlier run and the total UNet steps."""
    torch.set_num_threads(recipe.train_threads)
    torch.set_flush_denormal(True)
    clock = _Clock(recipe.train_max_minutes)
    started = time.perf_counter()
    previous = read_init(init, recipe) if init is not None else None
    log(f"rendering {recipe.data_samples} training scenes at {recipe.data_size} px")
    images, captions = render_data(recipe)
    if previous is None:
        pipe = tiny_sdxl_pipeline(recipe.train_seed)
        added = add_shape_tokens(pipe, recipe.train_seed)
        vae = build_vae(recipe, recipe.train_seed + 3)
        vae_record = train_vae(vae, images, recipe, clock, log)
        collapse_posterior(vae)
        latents = encode_latents(vae, images)
        unet = build_unet(recipe, recipe.train_seed + 7)
    else:
        pipe = load_pipeline(str(init))
        added, vae, vae_record = previous.get("added_tokens", []), pipe.vae, previous["vae"]
        latents = encode_latents(vae, images, rescale=False)
        unet = pipe.unet.train().requires_grad_(True)
        log(f"continuing the UNet of {init} ({previous['unet']['steps']} steps so far)")
    log(f"latents {tuple(latents.shape)}, scaling factor {vae.config.scaling_factor:.4f}")
    text = encode_captions(pipe, captions)
    log(f"{len(text[0])} distinct captions encoded")
    ema = copy.deepcopy(unet).requires_grad_(False)
    unet_record = train_unet(unet, ema, pipe, latents, text, recipe, clock, log)
    if previous is not None:
        unet_record["total_steps"] = previous["unet"].get("total_steps", previous["unet"]["steps"]) + unet_record["steps"]
    pipe.register_modules(vae=vae.eval().requires_grad_(False), unet=ema.eval())
    record = {
        "format": "maskattn-trt-base-1", "data_version": DATA_VERSION, "recipe": asdict(recipe),
        "added_tokens": added, "vae": vae_record, "unet": unet_record,
        "parameters": {name: sum(p.numel() for p in module.parameters())
                       for name, module in (("unet", ema), ("vae", vae), ("text_encoder", pipe.text_encoder),
                                            ("text_encoder_2", pipe.text_encoder_2))},
        "seconds": round(time.perf_counter() - started, 1), "torch": torch.__version__,
    }
    if previous is not None:
        record["continued_from"] = previous
    path = save_model(pipe, out, record)
    log(f"model written to {path} ({json.loads((path / MANIFEST_NAME).read_text())['total_bytes'] / 2**20:.1f} MiB)")
    return path
