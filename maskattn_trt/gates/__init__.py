"""MaskAttn gates: head, processor, installation, checkpoints, the graph signature and decision margins."""

from .attach import GATE_HEAD_DTYPES, attach_gates, cast_unet, check_gate_heads
from .checkpoint import (
    convert_official_checkpoint,
    gates_hash,
    gates_hashes,
    load_gates,
    load_official_gates,
    read_gate_checkpoint,
    save_gates,
)
from .graph import UNetGraph
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
    kept_gate_logits,
    recorded_gates,
    remove_gates,
    select_sites,
    set_gate_logit_keeping,
    set_gate_recording,
    set_gates_open,
    stage_of,
    unet_fingerprint,
)
from .margins import decision_margins, recording_gate_margins
from .processor import MaskAttnProcessor
from .synthetic import randomize_gates

__all__ = [
    "GATE_HEAD_DTYPES",
    "GateHead",
    "GateInstallation",
    "MaskAttnProcessor",
    "UNetGraph",
    "additive_mask",
    "attach_gates",
    "cast_unet",
    "check_gate_heads",
    "convert_official_checkpoint",
    "cross_attention_sites",
    "decision_margins",
    "fingerprint_matches",
    "gate_heads",
    "gate_installation",
    "gate_parameters",
    "gate_processors",
    "gates_hash",
    "gates_hashes",
    "hard_gate",
    "install_gates",
    "kept_gate_logits",
    "load_gates",
    "load_official_gates",
    "randomize_gates",
    "read_gate_checkpoint",
    "recorded_gates",
    "recording_gate_margins",
    "remove_gates",
    "save_gates",
    "select_sites",
    "set_gate_logit_keeping",
    "set_gate_recording",
    "set_gates_open",
    "stage_of",
    "straight_through",
    "unet_fingerprint",
]
