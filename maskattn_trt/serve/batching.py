"""Cross-request batching: which queued images may share one UNet call, and in what order they run.

Ray Serve's ``@serve.batch`` hands the replica whatever images were queued; here they are split into groups
that the sampler can run as ONE batch (same size, steps, scheduler and guidance: the things one scheduler
and one UNet input shape are built from), each group cut to the runner's capacity. Prompts, negative prompts
and seeds may differ inside a group: every image has its own conditioning rows and its own seeded generator.
Groups run in the order their first image arrived, so an incompatible request waits, it is never refused.
Pure Python: nothing here needs ray.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .schema import GenerateParams

GroupKey = tuple  # (width, height, steps, scheduler, guidance)


@dataclass(eq=False)
class Item:
    """One image of one request, as it waits in the batch queue."""

    params: GenerateParams
    seed: int
    request_id: str = ""
    enqueued: float = field(default_factory=time.perf_counter)
    cancelled: bool = False  # set by the request when its client left or it timed out

    @property
    def key(self) -> GroupKey:
        return group_key(self.params)


def group_key(params: GenerateParams) -> GroupKey:
    return (params.width, params.height, params.steps, params.scheduler, params.guidance)


def uses_guidance(key: GroupKey) -> bool:
    return key[4] > 1.0  # the sampler's rule: guidance <= 1 disables classifier-free guidance


def images_per_call(key: GroupKey, max_batch: int, profile_batch: int) -> int:
    """Images one UNet call can take: ``max_batch``, and the profile's batch halved when guidance doubles it."""
    return max(1, min(max_batch, profile_batch // (2 if uses_guidance(key) else 1)))


def plan(items: list[Item], capacity: Callable[[GroupKey], int]) -> list[list[Item]]:
    """Compatible items grouped (first arrival first), each group cut into runs of at most ``capacity(key)``."""
    groups: dict[GroupKey, list[Item]] = {}
    for item in items:
        groups.setdefault(item.key, []).append(item)
    runs = []
    for key, members in groups.items():
        size = capacity(key)
        runs.extend(members[i:i + size] for i in range(0, len(members), size))
    return runs
