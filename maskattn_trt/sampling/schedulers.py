"""Scheduler names -> diffusers schedulers built from the pipeline's own scheduler config.

The sampler drives them only through their public API (``set_timesteps``, ``set_begin_index``,
``scale_model_input``, ``step``, ``init_noise_sigma``), exactly as diffusers' SDXL pipeline does.
"""

from __future__ import annotations

import inspect

from ..errors import BadInputError

# name -> (diffusers class, config overrides)
SCHEDULERS: dict[str, tuple[str, dict]] = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler",
                        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
    "ddim": ("DDIMScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
}


def check_scheduler_name(name: str) -> str:
    if name not in SCHEDULERS:
        raise BadInputError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    return name


def make_scheduler(name: str, config):
    """A fresh scheduler ``name`` from ``config`` (a pipeline's ``scheduler.config``), never shared with the pipeline."""
    import diffusers

    cls_name, overrides = SCHEDULERS[check_scheduler_name(name)]
    return getattr(diffusers, cls_name).from_config(config, **overrides)


def step_kwargs(scheduler, generators, eta: float = 0.0) -> dict:
    """The optional ``step`` arguments this scheduler accepts (eta for DDIM, the generators for ancestral ones)."""
    accepted = inspect.signature(scheduler.step).parameters
    kwargs = {}
    if "eta" in accepted:
        kwargs["eta"] = eta
    if "generator" in accepted:
        kwargs["generator"] = generators
    return kwargs
