"""MaskAttn gates: head, processor, installation and checkpoints."""

from .checkpoint import (
    convert_official_checkpoint,
    gates_hash,
    load_gates,
    load_official_gates,
    read_gate_checkpoint,
    save_gates,
)
from .head import GateHead, additive_mask, hard_gate, straight_through
from .install import (
    GateInstallation,
    cross_attention_sites,
    fingerprint_matches,
    gate_heads,
    gate_installation,
    gate_parameters,
    gate_processors,
    install_gates,
    recorded_gates,
    remove_gates,
    select_sites,
    set_gate_recording,
    set_gates_open,
    stage_of,
    unet_fingerprint,
)
from .processor import MaskAttnProcessor

__all__ = [
    "GateHead",
    "GateInstallation",
    "MaskAttnProcessor",
    "additive_mask",
    "convert_official_checkpoint",
    "cross_attention_sites",
    "fingerprint_matches",
    "gate_heads",
    "gate_installation",
    "gate_parameters",
    "gate_processors",
    "gates_hash",
    "hard_gate",
    "install_gates",
    "load_gates",
    "load_official_gates",
    "read_gate_checkpoint",
    "recorded_gates",
    "remove_gates",
    "save_gates",
    "select_sites",
    "set_gate_recording",
    "set_gates_open",
    "stage_of",
    "straight_through",
    "unet_fingerprint",
]
