"""Which kernels did the engine use? Layer information, and whether each attention kept a fused kernel.

With a GPU, TensorRT's ``EngineInspector`` lists an engine's layers. Without one (TensorRT-RTX builds on a
CPU machine but cannot deserialize there), the builder prints the same per-layer lines in its verbose log;
:func:`inspect_build` captures them during a build. Each layer carries the ONNX nodes it fuses (``[ONNX
Layer: ...]`` metadata), which tells whether an attention's QK^T MatMul, mask Add, Softmax and AV MatMul ended
up in one fused multi-head-attention kernel or in separate MatMul / Softmax layers.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

_META = re.compile(r"\[ONNX Layer: ([^\]]+)\]")
_ATTN = re.compile(r"^(.*/attn[12])/(.*)$")


@dataclass(frozen=True)
class EngineLayer:
    name: str
    type: str
    tactic: str
    onnx_nodes: tuple[str, ...]


def capture_logger(trt, echo_errors: bool = True):
    """An ``ILogger`` that keeps every verbose line (for layer info) and prints warnings / errors."""

    class _Capture(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.lines: list[str] = []

        def log(self, severity, msg):
            self.lines.append(msg)
            if echo_errors and severity in (trt.ILogger.ERROR, trt.ILogger.INTERNAL_ERROR):
                print(f"[TRT] {msg}", file=sys.stderr)

    return _Capture()


def parse_layers(lines) -> list[EngineLayer]:
    """Engine layers from ONELINE layer-information text (verbose build log or EngineInspector)."""
    layers = []
    for line in (part for text in lines for part in str(text).splitlines()):
        if "LayerType:" not in line:
            continue
        name = re.search(r"Name: ([^,]*)", line)
        kind = re.search(r"LayerType: (\w+)", line)
        tactic = re.search(r"TacticName: ([^,]*)", line)
        layers.append(EngineLayer(name.group(1) if name else "", kind.group(1) if kind else "",
                                  tactic.group(1).strip() if tactic else "", tuple(_META.findall(line))))
    return layers


def attention_fusion(layers: list[EngineLayer]) -> dict[str, dict]:
    """ONNX attention scope (``/unet/.../attn2``) -> how its Softmax was compiled.

    ``fused``: the Softmax shares one engine layer with both attention MatMuls (a fused MHA kernel);
    ``mask_fused``: the additive-mask Add is inside that layer too.
    """
    report: dict[str, dict] = {}
    for layer in layers:
        by_scope: dict[str, list[str]] = {}
        for node in layer.onnx_nodes:
            match = _ATTN.match(node)
            if match and "gate_head" not in match.group(2):
                by_scope.setdefault(match.group(1), []).append(match.group(2))
        for scope, ops in by_scope.items():
            if not any(op.startswith("Softmax") for op in ops):
                continue
            matmuls = [op for op in ops if re.fullmatch(r"MatMul(_\d+)?", op)]
            report[scope] = {
                "fused": len(matmuls) >= 2,
                "mask_fused": any(re.fullmatch(r"Add(_\d+)?", op) for op in ops),
                "kernel": layer.tactic or layer.type,
                "layer_type": layer.type,
            }
    return report


def summarize(layers: list[EngineLayer]) -> list[str]:
    """Short report lines: layer-type counts and the attention-fusion verdict per kind of site."""
    counts: dict[str, int] = {}
    for layer in layers:
        counts[layer.type] = counts.get(layer.type, 0) + 1
    fusion = attention_fusion(layers)
    lines = [f"{len(layers)} engine layers: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))]
    for kind in ("attn1", "attn2"):
        scopes = {s: r for s, r in fusion.items() if s.endswith(kind)}
        if not scopes:
            continue
        fused = sum(r["fused"] for r in scopes.values())
        masked = sum(r["mask_fused"] for r in scopes.values())
        kernels = sorted({re.sub(r"_0x[0-9a-f]+$", "", r["kernel"]) for r in scopes.values()})
        lines.append(f"{kind}: {fused}/{len(scopes)} fused attention kernels ({', '.join(kernels)}), "
                     f"additive mask inside the kernel in {masked}")
    return lines
