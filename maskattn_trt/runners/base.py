"""The runner contract: a context manager with ``infer(feed) -> outputs``.

Sampler and parity harness only ever see this interface (Polygraphy's ``BaseRunner`` idea). Feeds and
outputs are dicts of torch tensors named as in the runner's IO spec (:mod:`maskattn_trt.spec` for the UNet,
:mod:`maskattn_trt.component_spec` for the text encoders and the VAE decoder): one runner class per backend
serves every component.
"""

from __future__ import annotations

import abc
import time

import torch

from ..component_spec import IOSpec
from ..errors import MaskAttnError


class Runner(abc.ABC):
    """Base class: subclasses implement :meth:`activate`, :meth:`infer_impl` and optionally :meth:`deactivate`."""

    name = "runner"

    def __init__(self, spec: IOSpec):
        self.spec = spec
        self.is_active = False
        self.last_inference_s = 0.0

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def activate(self) -> None:  # noqa: B027 - optional hook
        """Allocate sessions / contexts / buffers."""

    def deactivate(self) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`activate` allocated."""

    @abc.abstractmethod
    def infer_impl(self, feed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run one inference on a validated feed."""

    def infer(self, feed: dict[str, torch.Tensor], check: bool = True) -> dict[str, torch.Tensor]:
        if not self.is_active:
            raise MaskAttnError(f"{self.name} runner is not active; use it as a context manager (with runner: ...)")
        if check:
            self.spec.check(*self.spec.feed_shape(feed), what=f"{self.name} input")
        start = time.perf_counter()
        out = self.infer_impl(feed)
        self.last_inference_s = time.perf_counter() - start
        return out

    def __enter__(self) -> Runner:
        self.activate()
        self.is_active = True
        return self

    def __exit__(self, *exc) -> None:
        self.is_active = False
        self.deactivate()
