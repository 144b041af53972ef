"""Train the tiny SDXL-shaped base model from scratch on the synthetic world: the VAE, then the UNet.

The paper's experiment needs a text-to-image model that draws what it is told; SDXL's weights cannot be
downloaded here, so this trains one in miniature on :mod:`maskattn_trt.world` (coloured shapes, relations,
held-out combinations never drawn for training):

1. **VAE**: a diffusers ``AutoencoderKL`` (3 blocks: 128 px -> 4 x 32 x 32 latents) trained as an autoencoder
   (L1 + MSE reconstruction, a small KL term); its latent scaling factor is set from the data (1 / std).
2. **Text**: SDXL's two CLIP text encoders of the tiny pipeline keep their seeded random weights (frozen, the
   default) or are trained with the UNet (``text.lr`` > 0; their EMA ships, as the UNet's); the tokenizer
   gains whole-word tokens for the world's shapes (the shipped vocabulary splits "circle" into four pieces), whose embedding rows are drawn from the same seeded initialisation.
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
    text_lr: float = 0.0  # 0: the two text encoders stay frozen; > 0: trained with the UNet at this peak lr
    train_seed: int = 0
    train_threads: int = 2
    train_max_minutes: float = 0.0  # 0: no limit
    train_log_every: int = 100
    # continuations run after the first run, each as `--init <previous model>` would (fresh optimizer, warm-up and
    # cosine schedule, EMA from the previous EMA): every entry is ((field, value), ...) of RESTART_FIELDS
    unet_restarts: tuple[tuple[tuple[str, object], ...], ...] = ()


RESTART_FIELDS = ("unet_steps", "unet_lr", "unet_warmup", "unet_batch", "unet_ema_decay", "unet_cond_dropout",
                  "unet_snr_gamma", "text_lr", "train_max_minutes", "train_threads", "train_log_every")


def _dotted(name: str) -> str:
    return name.replace("_", ".", 1)


def _checked(name: str, value: object, defaults: BaseRecipe) -> object:
    """``value`` for recipe field ``name`` in its field's type; an unknown name or a wrong type is named."""
    known = {f.name for f in fields(BaseRecipe)}
    if name not in known:
        raise ConfigError(f"unknown base recipe key {_dotted(name)!r}; known: "
                          + ", ".join(sorted(_dotted(k) for k in known)))
    default = getattr(defaults, name)
    if name == "unet_restarts":
        return _restarts(value, defaults)
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, int) and v > 0 for v in value):
            raise ConfigError(f"base recipe {_dotted(name)} must be a list of positive integers; got {value!r}")
        return tuple(value)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not type(default):
        raise ConfigError(f"base recipe {_dotted(name)} must be {type(default).__name__}; got {value!r}")
    return value


def _restarts(value: object, defaults: BaseRecipe) -> tuple:
    """``[[unet.restarts]]`` tables (``steps = 9000``, ``lr = 2e-4``, ``text.lr = 3e-4``, ...) as field pairs."""
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ConfigError(f"base recipe unet.restarts must be a list of tables ([[unet.restarts]] with steps, lr, "
                          f"...); got {value!r}")
    out = []
    for table in value:
        pairs = []
        for key, item in table.items():
            inner = item.items() if isinstance(item, dict) else [(None, item)]
            for sub, val in inner:
                name = f"{key}_{sub}" if sub is not None else f"unet_{key}"
                if name not in RESTART_FIELDS:
                    raise ConfigError(f"unet.restarts: {_dotted(name)!r} cannot change in a continuation (same model "
                                      f"and data); allowed: " + ", ".join(_dotted(f) for f in RESTART_FIELDS))
                pairs.append((name, _checked(name, val, defaults)))
        out.append(tuple(pairs))
    return tuple(out)


def restart_recipes(recipe: BaseRecipe) -> list[BaseRecipe]:
    """The recipe of each continuation in ``unet.restarts`` (the first run's, with that entry's changes)."""
    first = replace(recipe, unet_restarts=())
    return [replace(first, **dict(pairs)) for pairs in recipe.unet_restarts]


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
    defaults = BaseRecipe()
    clean = {name: _checked(name, value, defaults) for name, value in values.items()}
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
    def __init__(self, minutes: float, start: float | None = None):
        self.start = time.perf_counter() if start is None else start
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


def _token_ids(pipe, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each caption's padded token ids for both tokenizers, exactly as ``encode_prompt`` tokenizes them."""
    return tuple(tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                           return_tensors="pt").input_ids for tokenizer in (pipe.tokenizer, pipe.tokenizer_2))


def encode_ids(encoders, ids: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """SDXL's conditioning from token ids: both encoders' penultimate hidden states side by side, and the second
    encoder's projected pooled output (what ``encode_prompt`` computes, here with gradients when they are on)."""
    states, pooled = [], None
    for encoder, tokens in zip(encoders, ids, strict=True):
        out = encoder(tokens, output_hidden_states=True)
        if out[0].ndim == 2:
            pooled = out[0]
        states.append(out.hidden_states[-2])
    return torch.cat(states, dim=-1), pooled


class CaptionConditioning:
    """The UNet's text inputs for a batch of training captions.

    Frozen encoders: every distinct caption is encoded once up front and looked up. Trained encoders
    (``trained=True``): the captions' token ids are kept and run through the encoders each step, with gradients."""

    def __init__(self, pipe, captions: list[str], trained: bool = False, batch: int = 256):
        unique = sorted(set(captions))
        index = {caption: i for i, caption in enumerate(unique)}
        self.rows = torch.tensor([index[c] for c in captions])
        self.encoders = (pipe.text_encoder, pipe.text_encoder_2)
        self.trained = trained
        self.ids = _token_ids(pipe, unique)
        if not trained:
            with torch.no_grad():
                parts = [encode_ids(self.encoders, tuple(ids[i:i + batch] for ids in self.ids))
                         for i in range(0, len(unique), batch)]
            self.embeds, self.pooled = torch.cat([e for e, _ in parts]), torch.cat([p for _, p in parts])

    def __len__(self) -> int:
        return len(self.ids[0])

    def __call__(self, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.rows[samples]
        if self.trained:
            return encode_ids(self.encoders, tuple(ids[rows] for ids in self.ids))
        return self.embeds[rows], self.pooled[rows]


def _noise_scheduler(pipe) -> DDPMScheduler:
    config = pipe.scheduler.config
    return DDPMScheduler(beta_start=config.beta_start, beta_end=config.beta_end, beta_schedule=config.beta_schedule,
                         num_train_timesteps=config.num_train_timesteps, prediction_type="epsilon")


def train_unet(unet: UNet2DConditionModel, pipe, latents: torch.Tensor, text: CaptionConditioning,
               recipe: BaseRecipe, clock: _Clock, log) -> tuple[dict, dict[str, torch.nn.Module]]:
    """The diffusion training loop; returns its record and the EMA copies of what it trained (``unet``, and the
    text encoders when ``text.lr`` > 0), which are what ships."""
    scheduler = _noise_scheduler(pipe)
    alphas = scheduler.alphas_cumprod
    snr_all = alphas / (1 - alphas)
    gen = torch.Generator().manual_seed(recipe.train_seed + 23)
    trained = {"unet": unet}
    groups = [{"params": list(unet.parameters()), "peak": recipe.unet_lr}]
    if text.trained:
        trained.update(text_encoder=pipe.text_encoder, text_encoder_2=pipe.text_encoder_2)
        groups.append({"params": [p for e in text.encoders for p in e.parameters()], "peak": recipe.text_lr})
    for module in trained.values():
        module.train().requires_grad_(True)
    emas = {name: copy.deepcopy(module).requires_grad_(False) for name, module in trained.items()}
    pairs = [(e, p) for name in trained for e, p in zip(emas[name].parameters(), trained[name].parameters(),
                                                          strict=True)]
    params = [p for group in groups for p in group["params"]]
    opt = torch.optim.AdamW(groups, lr=recipe.unet_lr, weight_decay=0.01)
    tids = time_ids(recipe.data_size, recipe.data_size, recipe.unet_batch)
    losses, step, started = [], 0, time.perf_counter()
    for step in range(recipe.unet_steps):
        for group in opt.param_groups:
            group["lr"] = _lr(step, group["peak"], recipe.unet_warmup, recipe.unet_steps)
        idx = torch.randint(len(latents), (recipe.unet_batch,), generator=gen)
        x0 = latents[idx]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(scheduler.config.num_train_timesteps, (recipe.unet_batch,), generator=gen)
        xt = scheduler.add_noise(x0, noise, t)
        keep = (torch.rand(recipe.unet_batch, generator=gen) >= recipe.unet_cond_dropout).float()
        embeds, pooled = text(idx)
        e = embeds * keep[:, None, None]
        p = pooled * keep[:, None]
        pred = unet(xt, t, e, added_cond_kwargs={"text_embeds": p, "time_ids": tids}).sample
        snr = snr_all[t]
        weight = torch.clamp(snr, max=recipe.unet_snr_gamma) / snr if recipe.unet_snr_gamma > 0 else torch.ones_like(snr)
        loss = (F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3)) * weight).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(recipe.unet_ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for e_param, param in pairs:
                e_param.lerp_(param, 1 - decay)
        losses.append(loss.item())
        if (step + 1) % recipe.train_log_every == 0:
            rate = (time.perf_counter() - started) / (step + 1)
            log(f"unet step {step + 1}/{recipe.unet_steps} loss {np.mean(losses[-recipe.train_log_every:]):.4f} "
                f"({rate:.2f} s/step)")
        if clock.out_of_time():
            log(f"unet: time limit reached at step {step + 1}")
            break
    for module in trained.values():
        module.eval().requires_grad_(False)
    record = {"steps": step + 1, "seconds": round(time.perf_counter() - started, 1),
              "loss_last_500": float(np.mean(losses[-500:])), "text_encoders": "trained" if text.trained else "frozen"}
    return record, {name: ema.eval() for name, ema in emas.items()}


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
    """The whole run: data, VAE, latents, text embeddings, UNet, then each of ``unet.restarts``; returns the
    saved model folder (``<out>/model``; the models before each restart stay in ``<out>/phase<k>/model``).

    ``init``: the model folder of an earlier run with the same model and data; its VAE and text encoders are
    kept and its (EMA) UNet is trained further for ``unet.steps`` steps (a fresh optimizer, warm-up and cosine
    schedule); the manifest records the earlier run and the total UNet steps. Each restart is exactly such a
    continuation of the model before it, so one recipe reproduces a chain of ``--init`` runs weight for weight."""
    torch.set_num_threads(recipe.train_threads)
    torch.set_flush_denormal(True)
    phases = [replace(recipe, unet_restarts=()), *restart_recipes(recipe)] if recipe.unet_restarts else [recipe]
    started = time.perf_counter()
    log(f"rendering {recipe.data_samples} training scenes at {recipe.data_size} px")
    data = render_data(recipe)
    for k, phase in enumerate(phases):
        last = k == len(phases) - 1
        if len(phases) > 1:
            log(f"phase {k + 1}/{len(phases)}: unet.steps={phase.unet_steps} unet.lr={phase.unet_lr:g} "
                f"text.lr={phase.text_lr:g}" + (f", continuing {init}" if init is not None else ""))
        init = _train_once(phase, out if last else out / f"phase{k + 1}", log, init, data, started)
        started = time.perf_counter()
    return init


def _train_once(recipe: BaseRecipe, out: Path, log, init: Path | None, data, started: float) -> Path:
    """One run (from scratch, or continuing ``init``) on the rendered ``data``; ``started``: its clock's start."""
    clock = _Clock(recipe.train_max_minutes, started)
    previous = read_init(init, recipe) if init is not None else None
    images, captions = data
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
    text = CaptionConditioning(pipe, captions, trained=recipe.text_lr > 0)
    log(f"{len(text)} distinct captions " + ("(text encoders trained)" if text.trained else "encoded"))
    unet_record, shipped = train_unet(unet, pipe, latents, text, recipe, clock, log)
    if previous is not None:
        unet_record["total_steps"] = previous["unet"].get("total_steps", previous["unet"]["steps"]) + unet_record["steps"]
    pipe.register_modules(vae=vae.eval().requires_grad_(False), **shipped)
    record = {
        "format": "maskattn-trt-base-1", "data_version": DATA_VERSION, "recipe": asdict(recipe),
        "added_tokens": added, "vae": vae_record, "unet": unet_record,
        "parameters": {name: sum(p.numel() for p in module.parameters())
                       for name, module in (("unet", pipe.unet), ("vae", vae), ("text_encoder", pipe.text_encoder),
                                            ("text_encoder_2", pipe.text_encoder_2))},
        "seconds": round(time.perf_counter() - started, 1), "torch": torch.__version__,
    }
    if previous is not None:
        record["continued_from"] = previous
    path = save_model(pipe, out, record)
    log(f"model written to {path} ({json.loads((path / MANIFEST_NAME).read_text())['total_bytes'] / 2**20:.1f} MiB)")
    return path
