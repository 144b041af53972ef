"""Choose the gated sites of an SDXL UNet, install / remove gate processors, and list gate parameters."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch
from torch import nn

from ..config import GateConfig
from ..errors import ConfigError
from ..utils.io import sha256_json
from .head import GateHead
from .processor import MaskAttnProcessor

_PROCESSOR_SUFFIX = ".processor"


def stage_of(site: str) -> str | None:
    """SDXL topology -> stage name (64x64 'high', 32x32 'mid', 16x16 bridge 'low' at 1024 px)."""
    if site.startswith("mid_block."):
        return "low"
    if site.startswith(("down_blocks.1.", "up_blocks.1.")):
        return "high"
    if site.startswith(("down_blocks.2.", "up_blocks.0.")):
        return "mid"
    return None


def _location(site: str) -> str:
    if site.startswith("down_blocks."):
        return "encoder"
    if site.startswith("up_blocks."):
        return "decoder"
    return "bridge"


def cross_attention_sites(unet: nn.Module) -> list[str]:
    """Names of every ``attn2`` (cross-attention) module, in the UNet's processor order."""
    return [
        name[: -len(_PROCESSOR_SUFFIX)]
        for name in unet.attn_processors
        if name.endswith(".attn2" + _PROCESSOR_SUFFIX)
    ]


def select_sites(unet: nn.Module, config: GateConfig) -> list[str]:
    """The cross-attention sites ``config`` gates on ``unet``; an empty selection is an error."""
    sites = []
    for site in cross_attention_sites(unet):
        stage = stage_of(site)
        if stage is None or (config.stage != "all" and stage != config.stage):
            continue
        location = _location(site)
        if config.placement != "encoder_decoder" and location != config.placement:
            continue
        sites.append(site)
    if not sites:
        raise ConfigError(
            f"gate config stage={config.stage!r}, placement={config.placement!r} selects no cross-attention "
            "layer of this UNet (the mid block belongs to placement 'encoder_decoder' only); "
            "choose another stage or placement"
        )
    return sites


def unet_fingerprint(unet: nn.Module) -> str:
    """sha256 of the UNet architecture: the name and shape of every backbone weight (gate heads and other
    processor weights left out).

    That is what decides whether gates fit. The diffusers config is not hashed: configs that build the same
    network differ in spelling (the published SDXL base config says ``upcast_attention: null``, one built
    from keyword defaults ``false``) and every diffusers release that adds an ``__init__`` argument adds a
    key. Works on the meta device.
    """
    shapes = {
        name: list(tensor.shape)
        for name, tensor in unet.state_dict().items()
        if _PROCESSOR_SUFFIX + "." not in name
    }
    return sha256_json({"unet_fingerprint": 2, "state_shapes": shapes})


def legacy_unet_fingerprints(unet: nn.Module) -> set[str]:
    """Fingerprints files written before :func:`unet_fingerprint` v2 may carry for this UNet.

    v1 hashed the diffusers config (private keys dropped). Besides the config as it is, the variants where
    every boolean option that defaults to ``False`` and is unset (``None``) or ``False`` is spelled all
    ``None`` or all ``False`` are accepted: they build the same network.
    """
    config = {k: v for k, v in dict(unet.config).items() if not k.startswith("_")}
    try:
        defaults = inspect.signature(type(unet).__init__).parameters
    except (TypeError, ValueError):
        defaults = {}
    falsy = [k for k, v in config.items() if (v is None or v is False) and k in defaults and defaults[k].default is False]
    variants = [config, {**config, **dict.fromkeys(falsy, None)}, {**config, **dict.fromkeys(falsy, False)}]
    return {sha256_json(variant) for variant in variants}


def fingerprint_matches(unet: nn.Module, recorded: str | None) -> bool:
    """True when ``recorded`` (from a checkpoint or manifest) names this UNet's architecture, v2 or v1."""
    if not recorded:
        return False
    return recorded == unet_fingerprint(unet) or recorded in legacy_unet_fingerprints(unet)


@dataclass(frozen=True)
class GateInstallation:
    """What :func:`install_gates` did: the config, the gated sites and which head each site uses."""

    config: GateConfig
    sites: tuple[str, ...]
    head_of_site: dict[str, str] = field(hash=False)
    unet_fingerprint: str = ""

    def to_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "sites": list(self.sites),
            "head_of_site": dict(self.head_of_site),
            "unet_fingerprint": self.unet_fingerprint,
        }


def _head_key(site: str, stage: str, feature_dim: int, token_dim: int, shared: bool) -> str:
    if shared:
        return f"{stage}_{feature_dim}x{token_dim}"
    return site.replace(".", "_")


def install_gates(unet: nn.Module, config: GateConfig | None = None) -> GateInstallation:
    """Install MaskAttn processors on the selected ``attn2`` layers of a diffusers SDXL UNet.

    The backbone is frozen; gate heads (fp32, on the UNet's device, initialised under the current torch
    seed) are the only trainable parameters. Installing again first removes the previous gates.
    """
    config = config or GateConfig()
    if gate_installation(unet) is not None:
        remove_gates(unet)
    sites = select_sites(unet, config)
    stock = dict(unet.attn_processors)
    processors = dict(stock)
    heads: dict[str, GateHead] = {}
    head_of_site: dict[str, str] = {}
    for site in sites:
        attn = unet.get_submodule(site)
        feature_dim, token_dim = attn.to_q.in_features, attn.to_k.in_features
        key = _head_key(site, stage_of(site), feature_dim, token_dim, config.share_heads)
        if key not in heads:
            heads[key] = GateHead(feature_dim, token_dim, config.hidden_size).to(
                device=attn.to_q.weight.device, dtype=torch.float32
            )
        head_of_site[site] = key
        processors[site + _PROCESSOR_SUFFIX] = MaskAttnProcessor(heads[key], config, site)
    unet.requires_grad_(False)
    unet.set_attn_processor(processors)
    for head in heads.values():
        head.requires_grad_(True)
    installation = GateInstallation(config, tuple(sites), head_of_site, unet_fingerprint(unet))
    # Plain attributes (not modules): they stay out of the state_dict.
    object.__setattr__(unet, "_maskattn_installation", installation)
    object.__setattr__(unet, "_maskattn_stock_processors", {s + _PROCESSOR_SUFFIX: stock[s + _PROCESSOR_SUFFIX] for s in sites})
    return installation


def remove_gates(unet: nn.Module) -> None:
    """Restore the stock processors on every gated site (a no-op on an ungated UNet)."""
    stock = getattr(unet, "_maskattn_stock_processors", None)
    if stock is None:
        return
    processors = dict(unet.attn_processors)
    processors.update(stock)
    unet.set_attn_processor(processors)
    object.__setattr__(unet, "_maskattn_installation", None)
    object.__setattr__(unet, "_maskattn_stock_processors", None)


def gate_installation(unet: nn.Module) -> GateInstallation | None:
    return getattr(unet, "_maskattn_installation", None)


def require_installation(unet: nn.Module) -> GateInstallation:
    installation = gate_installation(unet)
    if installation is None:
        raise ConfigError("this UNet has no MaskAttn gates; call maskattn_trt.install_gates(unet, config) first")
    return installation


def gate_processors(unet: nn.Module) -> dict[str, MaskAttnProcessor]:
    """site -> processor for every installed gate, in site order."""
    return {
        name[: -len(_PROCESSOR_SUFFIX)]: proc
        for name, proc in unet.attn_processors.items()
        if isinstance(proc, MaskAttnProcessor)
    }


def gate_heads(unet: nn.Module) -> dict[str, GateHead]:
    """head key -> the (possibly shared) gate head."""
    installation = require_installation(unet)
    processors = gate_processors(unet)
    return {installation.head_of_site[site]: proc.gate_head for site, proc in processors.items()}


def gate_parameters(unet: nn.Module) -> list[nn.Parameter]:
    """Unique gate parameters (shared heads counted once), for the optimizer."""
    unique: dict[int, nn.Parameter] = {}
    for head in gate_heads(unet).values():
        for param in head.parameters():
            unique[id(param)] = param
    return list(unique.values())


def set_gates_open(unet: nn.Module, open_: bool = True) -> None:
    """Force every gate open (stock attention) or back to normal gating."""
    for proc in gate_processors(unet).values():
        proc.force_open = open_


def set_gate_recording(unet: nn.Module, record: bool = True) -> None:
    for proc in gate_processors(unet).values():
        proc.record = record
        if not record:
            proc.last_gate = None


def recorded_gates(unet: nn.Module) -> dict[str, torch.Tensor]:
    """site -> last hard gate [B, N, T] for every site that recorded one."""
    return {site: proc.last_gate for site, proc in gate_processors(unet).items() if proc.last_gate is not None}


def set_gate_logit_keeping(unet: nn.Module, keep: bool = True) -> None:
    """Keep (or stop keeping) each site's last gate logits, with their graph, for a loss on them."""
    for proc in gate_processors(unet).values():
        proc.keep_logits = keep
        proc.last_logits = None


def kept_gate_logits(unet: nn.Module) -> dict[str, torch.Tensor]:
    """site -> last gate logits [B, N, T] (differentiable) for every site that kept them; clears them."""
    kept = {}
    for site, proc in gate_processors(unet).items():
        if proc.last_logits is not None:
            kept[site], proc.last_logits = proc.last_logits, None
    return kept
