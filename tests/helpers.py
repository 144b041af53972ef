"""Building blocks shared by every test package: the tiny gated UNet, its IO spec and a quiet export.

Plain functions (no fixtures): a test that needs its own, mutable copy calls them directly; the session-scoped,
read-only objects built from them live in ``tests/conftest.py``.
"""

from __future__ import annotations

from maskattn_trt import GateConfig, install_gates
from maskattn_trt.export import export_unet
from maskattn_trt.gates import gate_processors, randomize_gates
from maskattn_trt.models import TINY_VAE_SCALE, build_unet
from maskattn_trt.spec import Range, UNetIOSpec

# The exported range of every shared tiny export: batch 1..4, latent 16..64 (32..128 px through the tiny VAE,
# whose scale is 2), the same as `maskattn-trt export --model tiny` writes by default.
RANGES = {"batch": Range(1, 2, 4), "height": Range(16, 32, 64), "width": Range(16, 32, 64)}
GATES_SEED = 1  # the seed of the shared trained-looking gates (tests/conftest.py)


def trained_looking_gates(unet, seed: int = 0, logit_bias: float = -0.5):
    """Every gate parameter random and trained-looking (:func:`maskattn_trt.gates.randomize_gates` with LayerNorm
    scales around 1 and biases around 0, so no gate weight stays at ones / zeros and the exporter never folds one
    into a UNet weight); returns ``unet``."""
    randomize_gates(unet, seed, logit_bias=logit_bias, scale=2.0, norm_noise=0.2)
    return unet


def gated_tiny_unet(seed: int = GATES_SEED, config: GateConfig | None = None, logit_bias: float = -0.5):
    """A fresh tiny UNet (weights seed 0, fp32, eval) with trained-looking gates drawn from ``seed``."""
    unet = build_unet("tiny-random", seed=0)
    install_gates(unet, config or GateConfig())
    return trained_looking_gates(unet, seed, logit_bias)


def tiny_spec(unet, dtype: str = "fp32", gate_outputs: bool = True, **ranges) -> UNetIOSpec:
    """The tiny UNet's IO spec over ``RANGES`` (overridable), with one output per gated site by default."""
    spec = UNetIOSpec.for_unet(unet, dtype=dtype, vae_scale=TINY_VAE_SCALE, **{**RANGES, **ranges})
    return spec.with_gate_outputs(list(gate_processors(unet))) if gate_outputs else spec


def export_tiny(unet, folder, spec, slim: bool = False, **kwargs):
    """``export_unet`` without progress bars and, unless asked for, without the onnxslim pass (tests are about
    the graph the exporter writes; slimming is tested where it is switched on)."""
    return export_unet(unet, folder, spec, slim=slim, progress=False, **kwargs)
