"""Refit: swap new gate weights into a refittable engine, mapping ONNX initializers to gate parameters by name.

The exported graph names its gate nodes by module path (``/unet/<site>/gate_head/feature_net/feature_net.1/
MatMul``) and most gate initializers by parameter name (``unet.<site>.processor.gate_head.<param>``). The
exporter may still rename a weight (constant folding stores Linear weights transposed as ``onnx::MatMul_N``)
or deduplicate it with an equal UNet weight (a fresh LayerNorm's ones/zeros). :func:`isolate_gate_weights`
gives every gate weight its own initializer with a stable name before a refittable build, and records how
each maps to ``(site, parameter)``; ``refit`` then resolves those through a checkpoint's ``head_of_site`` and
checks names, sites and shapes before touching the engine.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from ..artifacts import EngineManifest, check_engine, engine_manifest_path
from ..errors import BackendUnavailableError, CheckpointError, EngineBuildError
from ..gates import read_gate_checkpoint
from ..utils.io import atomic_path, sha256_file
from ..utils.tensorrt import load_flavour

GATE_SCOPE = "gate_head"
STABLE_PREFIX = "maskattn.gate."
_SITE = re.compile(r"(down_blocks[./_]\d+|up_blocks[./_]\d+|mid_block)[./_]attentions[./_](\d+)"
                   r"[./_]transformer_blocks[./_](\d+)[./_]attn2")
_NET = re.compile(r"(feature_net|token_net)[./_](\d+)")
_PARAM = re.compile(r"gate_head[./_](?:(feature_net|token_net)[./_](\d+)[./_](weight|bias)|(logit_bias))")


@dataclass
class GateWeight:
    """One engine weight that holds a gate parameter, and the (site, parameter) pairs that read it."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    transpose: bool
    consumers: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "dtype": self.dtype, "transpose": self.transpose,
                "consumers": [list(c) for c in self.consumers]}

    @classmethod
    def from_dict(cls, name: str, data: dict) -> GateWeight:
        return cls(name, tuple(data["shape"]), data["dtype"], bool(data["transpose"]),
                   [tuple(c) for c in data["consumers"]])


def site_of(text: str) -> str | None:
    match = _SITE.search(text)
    if match is None:
        return None
    block = re.sub(r"[/_](\d+)$", r".\1", match.group(1))
    return f"{block}.attentions.{match.group(2)}.transformer_blocks.{match.group(3)}.attn2"


def _param_of_name(name: str) -> str | None:
    match = _PARAM.search(name)
    if match is None:
        return None
    return match.group(4) or f"{match.group(1)}.{match.group(2)}.{match.group(3)}"


def _param_of_node(node, input_index: int) -> tuple[str, bool] | None:
    """(parameter, stored transposed) for a gate node's weight input, from the node's scope name."""
    nets = _NET.findall(node.name)
    if not nets:
        return None
    net, idx = nets[-1]
    if node.op_type == "MatMul":
        return f"{net}.{idx}.weight", True
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return (f"{net}.{idx}.weight", not trans_b) if input_index == 1 else (f"{net}.{idx}.bias", False)
    if node.op_type == "LayerNormalization":
        return (f"{net}.{idx}.weight" if input_index == 1 else f"{net}.{idx}.bias"), False
    return None


def load_graph(onnx_path: str | Path):
    """The ONNX graph without external data, except the (small) gate weights, which are read in."""
    from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, ValueError, ... for a damaged file
        raise EngineBuildError(f"{onnx_path} is not a readable ONNX model ({type(exc).__name__}: {exc}); "
                               "re-run `maskattn-trt export`") from exc
    inits = {init.name: init for init in model.graph.initializer}
    for name in find_gate_weights(model):
        if uses_external_data(inits[name]):
            load_external_data_for_tensor(inits[name], str(Path(onnx_path).parent))
    return model


def find_gate_weights(model) -> dict[str, GateWeight]:
    """Initializer name -> :class:`GateWeight` for every initializer a gate node reads (through Identity)."""
    from onnx import helper

    inits = {init.name: init for init in model.graph.initializer}
    alias = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "Identity" and n.input[0]}

    def resolve(name: str) -> str:
        seen = set()
        while name in alias and name not in seen:
            seen.add(name)
            name = alias[name]
        return name

    found: dict[str, GateWeight] = {}
    for node in model.graph.node:
        if GATE_SCOPE not in node.name:
            continue
        site = site_of(node.name)
        for index, raw in enumerate(node.input):
            name = resolve(raw)
            if name not in inits:
                continue
            param = _param_of_name(name) if GATE_SCOPE in name else None
            transpose = False
            if param is None:
                guess = _param_of_node(node, index)
                if guess is None:
                    continue
                param, transpose = guess
            init = inits[name]
            entry = found.setdefault(name, GateWeight(name, tuple(init.dims),
                                                      helper.tensor_dtype_to_np_dtype(init.data_type).name, transpose))
            if site is not None and (site, param) not in entry.consumers:
                entry.consumers.append((site, param))
    return found


def isolate_gate_weights(model) -> dict[str, GateWeight]:
    """Give each gate weight its own initializer named ``maskattn.gate.<site>.<param>`` (in place).

    A gate weight deduplicated with a UNet weight is copied, so refitting it never changes the UNet. Returns
    the new name -> :class:`GateWeight` map (what a refittable engine records in its manifest).
    """
    from onnx import numpy_helper

    weights = find_gate_weights(model)
    inits = {init.name: init for init in model.graph.initializer}
    gate_nodes = [n for n in model.graph.node if GATE_SCOPE in n.name]
    alias = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "Identity"}
    result: dict[str, GateWeight] = {}
    for old, weight in weights.items():
        if not weight.consumers:
            continue
        site, param = weight.consumers[0]
        new = f"{STABLE_PREFIX}{site}.{param}"
        copy = numpy_helper.from_array(numpy_helper.to_array(inits[old]), name=new)
        model.graph.initializer.append(copy)
        for node in gate_nodes:
            for i, raw in enumerate(node.input):
                name = raw
                while name in alias and name != old:
                    name = alias[name]
                if name == old:
                    node.input[i] = new
        weight.name = new
        result[new] = weight
    return result


def gate_weights_hash(model) -> str | None:
    """sha256 of the gate weights a graph carries (when the export manifest records no gate hash)."""

    from onnx import numpy_helper

    weights = find_gate_weights(model)
    if not weights:
        return None
    inits = {init.name: init for init in model.graph.initializer}
    digest = hashlib.sha256()
    for name in sorted(weights, key=lambda n: sorted(weights[n].consumers)):
        digest.update(repr(sorted(weights[name].consumers)).encode())
        digest.update(np.ascontiguousarray(numpy_helper.to_array(inits[name])).tobytes())
    return digest.hexdigest()


def plan_refit(refit_map: dict[str, dict], checkpoint: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """Engine weight name -> new values from a gate checkpoint, checked; returns (weights, checkpoint meta).

    Refuses (CheckpointError) a checkpoint whose sites differ from the engine's, whose head sharing does not
    fit the engine's weights, or whose tensor shapes differ.
    """

    tensors, meta = read_gate_checkpoint(checkpoint)
    weights = {name: GateWeight.from_dict(name, data) for name, data in refit_map.items()}
    engine_sites = sorted({site for w in weights.values() for site, _ in w.consumers})
    head_of_site = meta.get("head_of_site") or {}
    if sorted(head_of_site) != engine_sites:
        extra, missing = sorted(set(head_of_site) - set(engine_sites)), sorted(set(engine_sites) - set(head_of_site))
        raise CheckpointError(
            f"gate checkpoint {checkpoint} gates other sites than the engine ({len(head_of_site)} vs "
            f"{len(engine_sites)}; only in checkpoint: {extra[:3]}, only in engine: {missing[:3]}); "
            "use gates trained with the engine's gate config, or rebuild the engine"
        )
    plan: dict[str, np.ndarray] = {}
    used = set()
    for name, weight in weights.items():
        keys = {f"{head_of_site[site]}.{param}" for site, param in weight.consumers}
        if len(keys) != 1:
            raise CheckpointError(f"engine weight {name} is shared by sites whose checkpoint heads differ "
                                  f"({sorted(keys)[:3]}); the engine was exported with shared heads — rebuild it")
        key = keys.pop()
        if key not in tensors:
            raise CheckpointError(f"gate checkpoint {checkpoint} lacks {key}, which engine weight {name} needs")
        value = tensors[key].detach().float().numpy()
        if weight.transpose:
            value = value.T
        if tuple(value.shape) != tuple(weight.shape):
            raise CheckpointError(f"gate checkpoint {checkpoint}: {key} has shape {tuple(value.shape)}, "
                                  f"engine weight {name} expects {tuple(weight.shape)}")
        plan[name] = np.ascontiguousarray(value.astype(weight.dtype))
        used.add(key)
    unused = sorted(set(tensors) - used)
    if unused:
        raise CheckpointError(f"gate checkpoint {checkpoint} has tensors no engine weight takes ({unused[:3]}); "
                              "it was made for another gate config")
    return plan, meta


def checkpoint_gates_hash(meta: dict) -> str:
    """:func:`maskattn_trt.gates.gates_hash` of a UNet with this checkpoint loaded, from its metadata alone."""

    installation = {key: meta[key] for key in ("config", "sites", "head_of_site", "unet_fingerprint")}
    return hashlib.sha256((meta["content_sha256"] + json.dumps(installation, sort_keys=True)).encode()).hexdigest()


def refit_engine(engine_path: str | Path, checkpoint: str | Path, force: bool = False) -> dict:
    """Refit the gate weights of a refittable engine in place (needs a GPU); updates its manifest."""
    engine_path = Path(engine_path)
    manifest = EngineManifest.load(engine_manifest_path(engine_path))
    check_engine(engine_path, manifest, force=force)
    if not manifest.refittable or not manifest.refit_map:
        raise EngineBuildError(f"engine {engine_path} was not built refittable; rebuild it with --refittable")
    plan, meta = plan_refit(manifest.refit_map, checkpoint)
    if not torch.cuda.is_available():
        raise BackendUnavailableError(
            f"refitting {engine_path} needs a CUDA GPU (TensorRT deserializes engines only on a GPU); the checkpoint "
            f"was validated against the engine ({len(plan)} weights map by name) — run refit on the GPU machine"
        )
    flavour = load_flavour(manifest.builder)
    trt = flavour.trt
    logger = flavour.logger()
    engine = trt.Runtime(logger).deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise EngineBuildError(f"could not deserialize {engine_path} with {flavour.label}; rebuild it")
    refitter = trt.Refitter(engine, logger)
    for name, value in plan.items():
        if not refitter.set_named_weights(name, trt.Weights(value)):
            raise EngineBuildError(f"{flavour.label} rejected new weights for {name} (shape {value.shape})")
    if not refitter.refit_cuda_engine():
        raise EngineBuildError(f"refitting {engine_path} failed; missing weights: {refitter.get_missing_weights()}")
    with atomic_path(engine_path) as tmp:
        tmp.write_bytes(bytes(engine.serialize()))
    manifest.engine_sha256 = sha256_file(engine_path)
    manifest.engine_bytes = engine_path.stat().st_size
    manifest.gates_hash = checkpoint_gates_hash(meta)
    manifest.head_of_site = meta.get("head_of_site", {})
    manifest.save(engine_manifest_path(engine_path))
    return {"weights": len(plan), "engine": str(engine_path), "gates_hash": manifest.gates_hash}
