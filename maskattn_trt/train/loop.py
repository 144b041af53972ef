"""The gate training loop (flat, nanoGPT-shaped): frozen SDXL, AdamW over the gate heads only.

    setup (processes, pipeline, gates, data, optimizer, resume)
    for each step: lr = learning_rate(step); accumulate micro-batch gradients (DDP syncs the last one);
                   clip; optimizer step; log; checkpoint every N steps
    write the final gates (a save_gates file that load_gates and export take)

Every random draw of a step comes from a generator seeded by (seed, rank, step, micro-step), and the data
order from (seed, epoch), so a run interrupted and resumed from a checkpoint ends bit-identical to one that
was not (CPU, fp32).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ConfigError, NonFiniteError
from ..gates import (
    gate_heads,
    gate_installation,
    gate_parameters,
    install_gates,
    kept_gate_logits,
    load_gates,
    recorded_gates,
    remove_gates,
    save_gates,
    set_gate_logit_keeping,
    set_gate_recording,
    set_gates_open,
)
from ..models import load_pipeline
from ..spec import TRAIN_DTYPES
from ..utils.io import claim_output_dir, ensure_writable_dir, write_json_atomic
from . import checkpoint as ckpt
from . import distributed
from .cache import CachedDataset, ensure_cache
from .data import EpochBatches, ImageCaptionDataset, SceneTargets, SkipCounter, collate, read_records
from .metrics import Callback, JsonlMetrics, ProgressBar, TensorBoard
from .objective import GatedDenoiser, Objective, evaluation_loss, gate_mask_loss
from .recipe import OptimSection, Recipe


def learning_rate(step: int, optim: OptimSection, total_steps: int) -> float:
    """LR of optimizer step ``step`` (0-based): linear warm-up, then cosine decay to lr * min_lr_ratio."""
    if step < optim.warmup_steps:
        return optim.lr * (step + 1) / optim.warmup_steps
    progress = min(1.0, (step - optim.warmup_steps) / max(1, total_steps - optim.warmup_steps))
    return optim.lr * (optim.min_lr_ratio + (1.0 - optim.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def step_seed(seed: int, rank: int, step: int, micro: int) -> int:
    return (((seed * 1_000_003 + step) * 1_009 + micro) * 131 + rank) % (2**63 - 1)


@dataclass
class TrainResult:
    out_dir: Path
    gates_path: Path
    start_step: int
    end_step: int
    total_steps: int
    seconds: float
    world_size: int
    losses: list[float] = field(default_factory=list)  # this process's loss of every step of this run
    open_fraction: dict[str, float] = field(default_factory=dict)  # last logged step
    skipped: dict[str, int] = field(default_factory=dict)
    checkpoint: Path | None = None
    probe_loss: tuple[float, float] = (float("nan"), float("nan"))  # fixed batch + fixed noise, start -> end
    mask_losses: list[float] = field(default_factory=list)  # train.mask_weight > 0: the mask loss of every step

    @property
    def finished(self) -> bool:
        return self.end_step >= self.total_steps

    def loss_start_end(self, losses: list[float] | None = None) -> tuple[float, float]:
        losses = self.losses if losses is None else losses
        k = max(1, len(losses) // 10)
        return sum(losses[:k]) / k, sum(losses[-k:]) / k

    def summary(self) -> str:
        start, end = self.loss_start_end() if self.losses else (float("nan"), float("nan"))
        ran = self.end_step - self.start_step
        opened = sum(self.open_fraction.values()) / max(1, len(self.open_fraction))
        state = "finished" if self.finished else f"stopped at step {self.end_step}/{self.total_steps}"
        return (f"{state}: {ran} steps in {self.seconds:.1f} s on {self.world_size} process(es); "
                f"loss {start:.4f} -> {end:.4f} (mean of first/last 10%); fixed-batch loss "
                f"{self.probe_loss[0]:.5f} -> {self.probe_loss[1]:.5f}; {self._mask_summary()}"
                f"mean gate open fraction {opened:.3f}; "
                f"skipped samples: {', '.join(f'{v} {k}' for k, v in self.skipped.items()) or 'none'}; "
                f"gates: {self.gates_path}")


    def _mask_summary(self) -> str:
        if not self.mask_losses:
            return ""
        start, end = self.loss_start_end(self.mask_losses)
        return f"mask loss {start:.4f} -> {end:.4f}; "


def prepare_pipeline(recipe: Recipe, pipe, device: torch.device):
    """Load (or take) the pipeline, freeze it, set precision and install the recipe's gates (fp32)."""
    if pipe is None:
        pipe = load_pipeline(recipe.model.model, seed=recipe.train.seed)
    dtype = TRAIN_DTYPES[recipe.model.precision]
    unet = pipe.unet
    for module, wanted in ((unet, dtype), (pipe.text_encoder, dtype), (pipe.text_encoder_2, dtype),
                           (pipe.vae, torch.float32)):  # the SDXL VAE overflows in fp16: keep it fp32
        module.requires_grad_(False)
        param = next(module.parameters())
        if param.dtype != wanted:
            module.to(dtype=wanted)
        if param.device != device:
            module.to(device=device)
    installed = gate_installation(unet)
    torch.manual_seed(recipe.train.seed)
    if recipe.train.init_gates:
        remove_gates(unet)
        install_gates(unet, recipe.gates)
        load_gates(unet, recipe.train.init_gates)
    elif installed is None or installed.config != recipe.gates:
        install_gates(unet, recipe.gates)
        with torch.no_grad():
            for head in gate_heads(unet).values():
                head.logit_bias.fill_(recipe.train.init_logit_bias)
    for head in gate_heads(unet).values():
        head.to(device=device, dtype=torch.float32).requires_grad_(True)
    set_gates_open(unet, False)
    if recipe.model.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    return pipe


def _data(recipe: Recipe, pipe, ctx, out_dir: Path, position: tuple[int, int], device):
    section = recipe.data
    scenes = recipe.train.mask_weight > 0
    records, skipped = None, SkipCounter(section.strict)
    if ctx.is_main or not section.format == "synthetic":
        records, skipped = read_records(section, out_dir / "synthetic", scenes)
    distributed.barrier(ctx)
    if records is None:
        records, skipped = read_records(section, out_dir / "synthetic", scenes)
    if section.cache_dir:
        if ctx.is_main:
            ensure_cache(pipe, records, section, recipe.train.seed, device, batch_size=recipe.train.batch_size,
                         progress=recipe.log.progress)
        distributed.barrier(ctx)
        dataset = CachedDataset(section.cache_dir)
    else:
        targets = None
        if scenes:
            side = section.resolution // int(getattr(pipe, "vae_scale_factor", 8))
            targets = SceneTargets(pipe.tokenizer, section.resolution, side, pipe.tokenizer.model_max_length)
        dataset = ImageCaptionDataset(records, section, recipe.train.seed, targets)
    global_batch = recipe.train.batch_size * ctx.world_size
    sampler = EpochBatches(len(dataset), recipe.train.batch_size, ctx.world_size, ctx.rank, recipe.train.seed,
                           start=(position[0], position[1] // global_batch))
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                                         num_workers=section.num_workers)
    probe = collate([dataset[(0, i)] for i in range(min(recipe.train.batch_size, len(dataset)))])
    return loader, sampler, skipped, probe


def build_cache(recipe: Recipe, pipe=None) -> Path:
    """Encode the dataset into ``data.cache_dir`` in this one process (then multi-process runs start at once).

    Under ``torchrun`` the main process builds a missing cache while the others wait at a barrier, which
    a very long encoding pass (all of COCO at 1024 px) can outlast: build it first with this.
    """
    if not recipe.data.cache_dir:
        raise ConfigError("data.cache_dir is not set; pass --set data.cache_dir=PATH to choose where the cache goes")
    device = distributed.init_distributed(recipe.model.device).device
    pipe = prepare_pipeline(recipe, pipe, device)
    records, skipped = read_records(recipe.data, Path(recipe.train.out_dir) / "synthetic")
    with torch.no_grad():
        return ensure_cache(pipe, records, recipe.data, recipe.train.seed, device,
                            batch_size=recipe.train.batch_size, progress=recipe.log.progress)


def _callbacks(recipe: Recipe, out_dir: Path, extra: list[Callback] | None) -> list[Callback]:
    found = [ProgressBar(disable=not recipe.log.progress), JsonlMetrics(out_dir / "metrics.jsonl")]
    if recipe.log.tensorboard:
        found.append(TensorBoard(out_dir / "tensorboard"))
    return found + list(extra or [])


def claim_run_folder(out_dir: Path, resume, force: bool) -> None:
    """The run-folder rules, checked before any work: a new run needs a new, empty or unfinished-run folder
    (``force`` starts over, deleting the old checkpoints and gates); ``resume`` needs a run with a checkpoint."""
    claim_output_dir(out_dir, ours=ckpt.is_run_folder, what="a training run (no recipe.json / checkpoints)",
                     force=force)
    if resume is True or str(resume) == "auto":
        if not ckpt.is_run_folder(out_dir):
            raise ConfigError(f"--resume: {out_dir} holds no training run (new, empty or foreign folder); drop "
                              "--resume to start a new run there")
        if ckpt.latest_checkpoint(out_dir) is None:
            raise ConfigError(f"--resume: run {out_dir} has no checkpoint yet (it stopped before the first one); "
                              "start it again without --resume")
    elif not resume and ckpt.has_progress(out_dir):
        if not force:
            latest = ckpt.latest_checkpoint(out_dir)
            where = f"checkpoint {latest.name}" if latest else "finished gates"
            raise ConfigError(f"{out_dir} already holds a training run ({where}); continue it with --resume, "
                              "or pass --force to start over (its checkpoints and gates are deleted)")
        ckpt.clear_run(out_dir)


def train(recipe: Recipe, *, pipe=None, resume: str | Path | bool | None = None, stop_after: int | None = None,
          callbacks: list[Callback] | None = None, force: bool = False) -> TrainResult:
    """Train the gate heads of ``recipe`` (on ``pipe`` if given, else ``recipe.model.model``).

    ``resume``: True / 'auto' (latest checkpoint of the run folder) or a checkpoint folder.
    ``stop_after``: stop after this many steps of this run, with a checkpoint (for time-limited jobs).
    ``force``: start over in a folder holding another run (its checkpoints and gates are deleted).
    Ctrl-C (KeyboardInterrupt) between steps writes a checkpoint of the last completed step, then re-raises.
    """
    started = time.perf_counter()
    ctx = distributed.init_distributed(recipe.model.device)
    # Saturated sigmoids of the straight-through gate produce subnormal floats, which run ~100x slower on
    # CPUs (measured: tiny UNet steps from 80 ms to 5-10 s). Flush them to zero while training on CPU.
    flush = ctx.device.type == "cpu" and torch.set_flush_denormal(True)
    try:
        return _train(recipe, ctx, pipe, resume, stop_after, callbacks, started, force)
    finally:
        if flush:
            torch.set_flush_denormal(False)
        distributed.shutdown(ctx)


def _train(recipe, ctx, pipe, resume, stop_after, callbacks, started, force) -> TrainResult:
    out_dir = Path(recipe.train.out_dir)
    if ctx.is_main:
        claim_run_folder(out_dir, resume, force)
    distributed.barrier(ctx)
    resume_dir = ckpt.resolve_resume(resume, out_dir)
    state = ckpt.load_trainer_state(resume_dir) if resume_dir else None
    if state is not None and state.recipe.get("gates") != recipe.to_dict()["gates"]:
        raise ConfigError(f"cannot resume from {resume_dir}: it trained gates {state.recipe.get('gates')}, "
                          f"this recipe asks for {recipe.to_dict()['gates']}")
    if state is not None and state.step >= recipe.train.steps:
        raise ConfigError(f"run {out_dir} is already at step {state.step} (train.steps={recipe.train.steps}): "
                          "nothing to do; pass a larger --steps to train further")
    if ctx.is_main:
        ensure_writable_dir(out_dir)
        write_json_atomic(out_dir / "recipe.json", recipe.to_dict())
    accum = recipe.train.grad_accum(ctx.world_size)
    calls = _callbacks(recipe, out_dir, callbacks) if ctx.is_main else []  # fails early if TensorBoard is missing

    pipe = prepare_pipeline(recipe, pipe, ctx.device)
    unet, dtype = pipe.unet, TRAIN_DTYPES[recipe.model.precision]
    if state is not None:
        load_gates(unet, resume_dir / ckpt.GATES_FILE)
    params = gate_parameters(unet)
    model = distributed.wrap(GatedDenoiser(unet), ctx)
    optimizer = torch.optim.AdamW(params, lr=recipe.optim.lr, betas=recipe.optim.betas, eps=recipe.optim.eps,
                                  weight_decay=recipe.optim.weight_decay)
    scaler = torch.amp.GradScaler(ctx.device.type) if recipe.model.precision == "fp16" else None
    step, position = 0, (0, 0)
    if state is not None:
        optimizer.load_state_dict(state.optimizer)
        if scaler is not None and state.scaler:
            scaler.load_state_dict(state.scaler)
        if ctx.rank < len(state.rng):
            ckpt.set_rng_state(state.rng[ctx.rank])
        step, position = state.step, state.position
    objective = Objective(pipe.scheduler.config, recipe.train.prediction_type, recipe.train.min_snr_gamma,
                          pipe.vae.config.scaling_factor)
    loader, sampler, skipped, probe = _data(recipe, pipe, ctx, out_dir, position, ctx.device)
    global_batch = recipe.train.batch_size * ctx.world_size
    epoch, batch_index = position[0], position[1] // global_batch
    total, start_step = recipe.train.steps, step
    for cb in calls:
        cb.on_start({"steps": total, "start_step": step, "recipe": recipe, "world_size": ctx.world_size,
                     "grad_accum": accum, "resumed_from": resume_dir})

    probe_cond = objective.conditioning(pipe, probe, ctx.device) if ctx.is_main and probe["size"] else None
    denoiser = GatedDenoiser(unet)
    probe_before = evaluation_loss(objective, denoiser, probe_cond, recipe.train.seed, dtype=dtype) if probe_cond else math.nan
    mask_weight = recipe.train.mask_weight
    set_gate_logit_keeping(unet, mask_weight > 0)
    batches = iter(loader)
    losses, mask_losses, open_fraction, last_ckpt = [], [], {}, None
    clip = recipe.optim.grad_clip if recipe.optim.grad_clip > 0 else float("inf")
    end = total if stop_after is None else min(total, step + stop_after)
    committed, writing = (epoch, batch_index * global_batch), False
    try:
        while step < end:
            t0 = time.perf_counter()
            lr = learning_rate(step, recipe.optim, total)
            for group in optimizer.param_groups:
                group["lr"] = lr
            logged = (step + 1) % recipe.log.every == 0 or step + 1 == end
            set_gate_recording(unet, logged)
            step_loss = step_mask_loss = 0.0
            for micro in range(accum):
                while True:  # a batch whose every sample is bad is skipped as a whole
                    batch = next(batches)
                    epoch, batch_index = sampler.position_after(epoch, batch_index)
                    for reason, where in batch["bad"]:
                        skipped.skip(reason, where)
                    if batch["size"]:
                        break
                cond = objective.conditioning(pipe, batch, ctx.device)
                generator = torch.Generator(ctx.device).manual_seed(step_seed(recipe.train.seed, ctx.rank, step, micro))
                sync = micro == accum - 1 or not ctx.enabled
                with contextlib.nullcontext() if sync else model.no_sync():
                    loss = objective.loss(model, cond, generator, dtype) / accum
                    total_loss = loss
                    if mask_weight:
                        mask_loss = gate_mask_loss(kept_gate_logits(unet), batch["token_masks"].to(ctx.device),
                                                   batch["object_tokens"].to(ctx.device)) / accum
                        value = mask_loss.item()
                        if value and not mask_loss.requires_grad:
                            raise ConfigError("train.mask_weight: the gate logits carry no gradient (gradient "
                                              "checkpointing recomputes them outside the graph); set "
                                              "model.gradient_checkpointing=false")
                        total_loss = loss + mask_weight * mask_loss
                        step_mask_loss += value
                    (scaler.scale(total_loss) if scaler is not None else total_loss).backward()
                step_loss += loss.item()
            if not math.isfinite(step_loss):
                raise NonFiniteError(_non_finite(f"the training loss is {step_loss}", step + 1, lr, last_ckpt))
            if scaler is not None:
                scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, clip).item()
            if scaler is not None:
                scaler.step(optimizer)  # skips steps with non-finite gradients and lowers its scale
                scaler.update()
            else:
                if not math.isfinite(grad_norm):
                    raise NonFiniteError(_non_finite(f"the gradient norm is {grad_norm}", step + 1, lr, last_ckpt))
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if not all(bool(torch.isfinite(p).all()) for p in params):
                raise NonFiniteError(_non_finite("gate weights became NaN or infinite", step + 1, lr, last_ckpt))
            step += 1
            committed = (epoch, batch_index * global_batch)
            losses.append(step_loss)
            record = {"step": step, "loss": step_loss, "lr": lr, "grad_norm": grad_norm,
                      "samples_per_s": recipe.train.batch_size * accum * ctx.world_size / (time.perf_counter() - t0),
                      "logged": logged}
            if mask_weight:
                mask_losses.append(step_mask_loss)
                record["mask_loss"] = step_mask_loss
            if logged:
                record["loss"] = distributed.mean_over_ranks(step_loss, ctx)
                if mask_weight:
                    record["mask_loss"] = distributed.mean_over_ranks(step_mask_loss, ctx)
                open_fraction = {site: g.float().mean().item() for site, g in recorded_gates(unet).items()}
                record["open_fraction"] = open_fraction
                record["elapsed_s"] = time.perf_counter() - started
                set_gate_recording(unet, False)
            for cb in calls:
                cb.on_step(record)
            every = recipe.checkpoint.every
            if (every and step % every == 0) or step == end:
                writing = True
                last_ckpt = _checkpoint(recipe, ctx, unet, optimizer, scaler, step, committed)
                writing = False
                for cb in calls:
                    cb.on_checkpoint(last_ckpt)
    except KeyboardInterrupt:
        # Ctrl-C: keep the work done so far, as --stop-after would (one process only: a checkpoint of a
        # multi-process run needs every process). Not while a checkpoint is being written: that one is
        # atomic and the previous checkpoint stays the latest.
        saved = last_ckpt is not None and last_ckpt.name == f"step-{step:08d}"
        if ctx.enabled or writing or step == start_step or saved:
            raise
        last_ckpt = _checkpoint(recipe, ctx, unet, optimizer, scaler, step, committed)
        print(f"interrupted: wrote checkpoint {last_ckpt} (step {step}); continue with --resume", file=sys.stderr)
        raise
    finally:
        set_gate_logit_keeping(unet, False)  # a caller's pipeline must not keep graphs alive after training
    del batches
    set_gate_recording(unet, False)
    if recipe.model.gradient_checkpointing:
        unet.disable_gradient_checkpointing()

    counts = distributed.gather(dict(skipped), ctx)
    skipped_total = {k: sum(c.get(k, 0) for c in counts) for c in counts for k in c}
    gates_path = out_dir / "gates.safetensors"
    if step >= total:
        if ctx.is_main:
            save_gates(unet, gates_path, extra={"step": step, "recipe": recipe.to_dict()})
        distributed.barrier(ctx)
    elif last_ckpt is not None:
        gates_path = last_ckpt / ckpt.GATES_FILE
    probe_after = evaluation_loss(objective, denoiser, probe_cond, recipe.train.seed, dtype=dtype) if probe_cond else math.nan
    result = TrainResult(out_dir, gates_path, start_step, step, total, time.perf_counter() - started,
                         ctx.world_size, losses, open_fraction, skipped_total, last_ckpt, (probe_before, probe_after),
                         mask_losses)
    for cb in calls:
        cb.on_end({"result": result})
    return result


def _non_finite(what: str, step: int, lr: float, last_ckpt: Path | None) -> str:
    where = f"the last good checkpoint is {last_ckpt}" if last_ckpt else "no checkpoint was written"
    return (f"{what} at step {step} (learning rate {lr:g}); lower optim.lr or check the data and precision; "
            f"{where}")


def _checkpoint(recipe, ctx, unet, optimizer, scaler, step, position) -> Path:
    rng = distributed.gather(ckpt.rng_state(), ctx)
    path = Path(recipe.train.out_dir) / "checkpoints" / f"step-{step:08d}"
    if ctx.is_main:
        state = ckpt.TrainerState(step, position, optimizer.state_dict(),
                                  scaler.state_dict() if scaler is not None else None, rng,
                                  recipe.to_dict(), ctx.world_size)
        path = ckpt.save_checkpoint(recipe.train.out_dir, unet, state, recipe.checkpoint.keep)
    distributed.barrier(ctx)
    return path
