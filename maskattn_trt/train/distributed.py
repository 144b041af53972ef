"""Distributed training on torch.distributed: one process per device, DDP over the gate parameters only.

Launch with ``torchrun`` or ``accelerate launch`` (both set RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR);
a plain ``python`` / ``maskattn-trt train`` is one process. Backend: NCCL on CUDA, gloo on CPU.

The UNet is frozen; DDP is told to ignore every frozen parameter and buffer, so it neither broadcasts the
2.6 B backbone weights at start-up nor allocates gradient buckets for them: only the (shared) gate heads
are synchronised. A head shared by several sites is one parameter used several times per forward, which
DDP handles (its gradient is ready once every use has been accumulated).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..errors import BackendUnavailableError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _device(preference: str, local_rank: int) -> torch.device:
    if preference == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise BackendUnavailableError(
                f"process {local_rank} of this node has no GPU of its own ({count} visible): launch at most {count} "
                "process(es) per node (NPROC / --nproc_per_node), or pass --set model.device='cpu' for gloo on CPU")
        return torch.device(f"cuda:{local_rank}")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(f"model.device={preference!r} but CUDA is not available here; use 'cpu' or 'auto'")
    return device


def init_distributed(device_preference: str = "auto") -> DistContext:
    """Join the process group the launcher describes (or run as one process when there is none)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = _device(device_preference, local_rank)
    if world_size <= 1:
        return DistContext(device=device)
    owns = False
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        owns = True
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, device, owns)


def wrap(model: nn.Module, ctx: DistContext) -> nn.Module:
    """DDP over ``model``'s trainable parameters only (a no-op for one process)."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    frozen += [name for name, _ in model.named_buffers()]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, frozen)
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def mean_over_ranks(value: float, ctx: DistContext) -> float:
    if not ctx.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    return tensor.item() / ctx.world_size


def gather(obj, ctx: DistContext) -> list:
    """Every rank's ``obj`` (on every rank)."""
    if not ctx.enabled:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj, ctx: DistContext):
    """Rank 0's ``obj`` on every rank."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()
