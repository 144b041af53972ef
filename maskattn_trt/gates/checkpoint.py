"""Gate checkpoints: safetensors weights with JSON metadata in the header, and import of the official
code's ``gate_final.pt`` (format ``maskattn-sdxl-gates-v1``).

Our format stores each (possibly shared) head once as ``<head_key>.<param>`` and records, in the
safetensors metadata under ``maskattn``: format, gate config, sites and their heads, the UNet architecture
fingerprint and a sha256 of the tensor contents (so a corrupted file is detected, not silently used).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..config import GateConfig
from ..errors import CheckpointError, ConfigError
from ..utils.io import atomic_path
from .install import (
    GateInstallation,
    fingerprint_matches,
    gate_heads,
    gate_installation,
    install_gates,
    legacy_unet_fingerprints,
    require_installation,
)

FORMAT = "maskattn-trt-gates-v1"
OFFICIAL_FORMAT = "maskattn-sdxl-gates-v1"
_META_KEY = "maskattn"


def _content_hash(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def gate_tensors(unet: nn.Module) -> dict[str, torch.Tensor]:
    """head_key.param -> tensor (each shared head once), on CPU."""
    return {
        f"{key}.{name}": value.detach().cpu().clone()
        for key, head in gate_heads(unet).items()
        for name, value in head.state_dict().items()
    }


def gates_hash(unet: nn.Module) -> str:
    """Content hash of the installed gate weights and their configuration (for manifests)."""
    installation = require_installation(unet)
    return hashlib.sha256(
        (_content_hash(gate_tensors(unet)) + json.dumps(installation.to_dict(), sort_keys=True)).encode()
    ).hexdigest()


def gates_hashes(unet: nn.Module) -> set[str]:
    """Every hash under which the installed gates may be recorded: :func:`gates_hash`, and the hashes exports
    and engines made before fingerprint v2 recorded for them (the same installation with a v1 fingerprint)."""
    installation = require_installation(unet)
    content = _content_hash(gate_tensors(unet))
    hashes = {gates_hash(unet)}
    for legacy in legacy_unet_fingerprints(unet):
        described = json.dumps({**installation.to_dict(), "unet_fingerprint": legacy}, sort_keys=True)
        hashes.add(hashlib.sha256((content + described).encode()).hexdigest())
    return hashes


def save_gates(unet: nn.Module, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write the installed gates to ``path`` (.safetensors), atomically."""
    installation = require_installation(unet)
    tensors = gate_tensors(unet)
    meta = {
        "format": FORMAT,
        **installation.to_dict(),
        "content_sha256": _content_hash(tensors),
        "extra": extra or {},
    }
    path = Path(path)
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps(meta, sort_keys=True)})
    return path


def read_gate_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read and verify a gate checkpoint file; returns (tensors, metadata)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"gate checkpoint {path} does not exist; pass the .safetensors file save_gates wrote")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            raw_meta = (handle.metadata() or {}).get(_META_KEY)
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        hint = " (an official gate_final.pt? convert it with `maskattn-trt convert-gates`)" if path.suffix == ".pt" else ""
        raise CheckpointError(f"gate checkpoint {path} is not a readable safetensors file: {exc}{hint}") from exc
    if raw_meta is None:
        raise CheckpointError(f"{path} has no maskattn metadata: it is not a gate checkpoint written by save_gates")
    try:
        meta = json.loads(raw_meta)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"gate checkpoint {path} has corrupted metadata ({exc}); re-export the gates") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {meta.get('format')!r}, expected {FORMAT!r}")
    if _content_hash(tensors) != meta.get("content_sha256"):
        raise CheckpointError(
            f"gate checkpoint {path} is corrupted: its tensors do not match the sha256 in its metadata; "
            "restore it from the original or re-save the gates"
        )
    return tensors, meta


def load_gates(unet: nn.Module, path: str | os.PathLike) -> dict:
    """Load a gate checkpoint into ``unet``, installing gates with the checkpoint's config if needed.

    Refuses (CheckpointError, naming the mismatch) a checkpoint made for another UNet architecture, another
    gate configuration or other sites, and a corrupted file. Returns the checkpoint metadata.
    """
    tensors, meta = read_gate_checkpoint(path)
    try:
        config = GateConfig.from_dict(meta["config"])
    except (ConfigError, KeyError, TypeError) as exc:
        raise CheckpointError(f"gate checkpoint {path} has an invalid gate config: {exc}") from exc
    installation = gate_installation(unet)
    if installation is None:
        try:
            installation = install_gates(unet, config)
        except ConfigError as exc:
            raise CheckpointError(f"gate checkpoint {path} does not fit this UNet: {exc}") from exc
    if not fingerprint_matches(unet, meta.get("unet_fingerprint")):
        raise CheckpointError(
            f"gate checkpoint {path} was made for another UNet architecture (fingerprint "
            f"{str(meta.get('unet_fingerprint'))[:12]}, this UNet {installation.unet_fingerprint[:12]}); "
            "use gates trained for this model"
        )
    if installation.config != config:
        diff = {
            k: (v, getattr(installation.config, k))
            for k, v in config.to_dict().items()
            if getattr(installation.config, k) != v
        }
        raise CheckpointError(
            f"gate checkpoint {path} has gate config {diff} (checkpoint, installed) ; "
            "install gates with the checkpoint's config or load it into an ungated UNet"
        )
    difference = site_difference(installation.sites, meta.get("sites") or [])
    if difference:
        raise CheckpointError(f"gate checkpoint {path} gates other sites than this UNet's installation: {difference}")
    if installation.head_of_site != meta.get("head_of_site"):
        changed = sorted(s for s in installation.head_of_site if installation.head_of_site[s] != meta["head_of_site"].get(s))
        raise CheckpointError(
            f"gate checkpoint {path} assigns other gate heads to {len(changed)} site(s) than this installation "
            f"(e.g. {changed[0]}: checkpoint {meta['head_of_site'].get(changed[0])!r}, installed "
            f"{installation.head_of_site[changed[0]]!r})"
        )
    _assign(unet, tensors, str(path))
    return meta


def site_difference(installed, found, label: str = "the checkpoint") -> str:
    """'' when both name the same sites (order does not matter), else which names are missing / extra."""
    installed, found = list(installed), list(found)
    missing = [s for s in installed if s not in set(found)]
    extra = sorted(set(found) - set(installed))
    repeated = sorted({s for s in found if found.count(s) > 1})
    parts = []
    if missing:
        parts.append(f"{len(missing)} site(s) this UNet gates are missing from {label} ({_names(missing)})")
    if extra:
        parts.append(f"{label} has {len(extra)} site(s) this UNet does not gate ({_names(extra)})")
    if repeated:
        parts.append(f"{label} lists {_names(repeated)} more than once")
    return "; ".join(parts)


def _names(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... {len(names) - limit} more" if len(names) > limit else "")


def _assign(unet: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    heads = gate_heads(unet)
    expected = {f"{key}.{name}": value for key, head in heads.items() for name, value in head.state_dict().items()}
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"gate checkpoint {source} does not match the installed gate heads: missing {missing[:4]}, "
            f"unexpected {unexpected[:4]}"
        )
    for name, value in tensors.items():
        if tuple(value.shape) != tuple(expected[name].shape):
            raise CheckpointError(
                f"gate checkpoint {source}: {name} has shape {tuple(value.shape)}, this UNet's gate head expects "
                f"{tuple(expected[name].shape)}"
            )
    for key, head in heads.items():
        state = {name[len(key) + 1 :]: value for name, value in tensors.items() if name.startswith(key + ".")}
        # assign=True also materialises heads of a UNet built on the meta device.
        head.load_state_dict(state, strict=True, assign=head.logit_bias.is_meta)
        head.requires_grad_(True)


# --------------------------------------------------------------------------------------------- official


_OFFICIAL_CONFIG_KEYS = {
    "stage": "stage",
    "placement": "placement",
    "threshold": "threshold",
    "negative_value": "negative_value",
    "gate_hidden_dim": "hidden_size",
    "share_gate_heads_by_stage": "share_heads",
}


def read_official_checkpoint(path: str | os.PathLike) -> tuple[GateConfig, list[str], dict[str, torch.Tensor]]:
    """Parse an official ``gate_final.pt`` safely (``weights_only=True``).

    Returns (config, sites, per-site tensors ``<site>.gate_head.<param>``).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"official gate checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for bad files
        raise CheckpointError(
            f"{path} could not be read as a weights-only torch checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); expected the official code's gate_final.pt"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != OFFICIAL_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path} has format {found!r}, expected {OFFICIAL_FORMAT!r} (official gate_final.pt)")
    raw = dict(payload.get("maskattn_config") or {})
    values = {ours: raw[theirs] for theirs, ours in _OFFICIAL_CONFIG_KEYS.items() if theirs in raw}
    try:
        config = GateConfig(**values)
    except ConfigError as exc:
        raise CheckpointError(f"{path} carries a gate config this toolkit cannot use: {exc}") from exc
    sites = [name.removesuffix(".processor") for name in payload.get("selected_layers", [])]
    state = payload.get("gate_state_dict")
    if not isinstance(state, dict) or not sites:
        raise CheckpointError(f"{path} has no gate_state_dict / selected_layers; it is not a complete gate checkpoint")
    tensors = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor) or ".processor.gate_head." not in key:
            raise CheckpointError(f"{path}: unexpected entry {key!r} in gate_state_dict")
        tensors[key.replace(".processor.gate_head.", ".gate_head.")] = value
    return config, sites, tensors


def load_official_gates(unet: nn.Module, path: str | os.PathLike) -> GateInstallation:
    """Install gates as the official checkpoint describes and load its weights into ``unet``."""
    config, sites, site_tensors = read_official_checkpoint(path)
    try:
        installation = install_gates(unet, config)
    except ConfigError as exc:
        raise CheckpointError(f"official checkpoint {path} does not fit this UNet: {exc}") from exc
    # The official code lists its layers sorted by name, we install them in module order: match by name.
    difference = site_difference(installation.sites, sites, label="the official checkpoint")
    if difference:
        raise CheckpointError(
            f"official checkpoint {path} (stage={config.stage!r}, placement={config.placement!r}) does not fit this UNet's "
            f"cross-attention layers: {difference}; it was made for another UNet architecture"
        )
    stray = sorted({name.split(".gate_head.")[0] for name in site_tensors} - set(installation.sites))
    if stray:
        raise CheckpointError(f"official checkpoint {path} has gate weights for sites it does not select "
                              f"({_names(stray)}); the file is inconsistent")
    tensors: dict[str, torch.Tensor] = {}
    for site, key in installation.head_of_site.items():
        prefix = f"{site}.gate_head."
        for name, value in site_tensors.items():
            if not name.startswith(prefix):
                continue
            ours = f"{key}.{name[len(prefix):]}"
            if ours in tensors and not torch.equal(tensors[ours], value):
                raise CheckpointError(
                    f"official checkpoint {path}: sites sharing head {key} carry different {name[len(prefix):]}; "
                    "it was trained with share_gate_heads_by_stage=False but says otherwise"
                )
            tensors[ours] = value.float()
    _assign(unet, tensors, str(path))
    return installation


def convert_official_checkpoint(
    source: str | os.PathLike, target: str | os.PathLike, unet: nn.Module
) -> Path:
    """Convert ``gate_final.pt`` into our safetensors format for ``unet`` (meta-device UNets work)."""
    load_official_gates(unet, source)
    return save_gates(unet, target, extra={"converted_from": Path(source).name})
