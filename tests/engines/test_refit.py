"""Gate refit: ONNX initializers map to gate parameters by name; wrong checkpoints are refused (CPU)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from maskattn_trt import GateConfig, save_gates
from maskattn_trt.engines.refit import find_gate_weights, isolate_gate_weights, load_graph, plan_refit
from maskattn_trt.errors import CheckpointError
from maskattn_trt.gates import gate_heads

from ..helpers import gated_tiny_unet


@pytest.fixture(scope="module")
def isolated(fp32_export):
    model = load_graph(fp32_export.out_dir / "unet.onnx")
    return model, isolate_gate_weights(model)


def test_every_gate_parameter_maps_to_one_named_engine_weight(isolated, gated_unet):
    model, weights = isolated
    installation = gated_unet._maskattn_installation
    assert {site for w in weights.values() for site, _ in w.consumers} == set(installation.sites)
    params = {f"{installation.head_of_site[s]}.{p}" for w in weights.values() for s, p in w.consumers}
    expected = {f"{key}.{name}" for key, head in gate_heads(gated_unet).items() for name, _ in head.named_parameters()}
    assert params == expected
    assert all(name.startswith("maskattn.gate.") for name in weights)


def test_checkpoint_values_land_on_the_exported_initializers(isolated, gated_unet, tmp_path):
    """The plan for the gates the graph was exported with reproduces the graph's own initializers exactly."""
    model, weights = isolated
    ckpt = save_gates(gated_unet, tmp_path / "same.safetensors")
    plan, _ = plan_refit({n: w.to_dict() for n, w in weights.items()}, ckpt)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    assert set(plan) == set(weights)
    for name, value in plan.items():
        np.testing.assert_array_equal(value, inits[name], err_msg=name)
    assert any(w.transpose for w in weights.values())  # constant-folded Linear weights were found by node scope


def test_isolated_graph_reads_the_same_values(isolated, fp32_export):
    """Every rewired gate input holds exactly the value the original input resolved to (nothing else changed)."""
    model, weights = isolated
    original = onnx.load(str(fp32_export.out_dir / "unet.onnx"))
    alias = {n.output[0]: n.input[0] for n in original.graph.node if n.op_type == "Identity"}
    old_values = {i.name: numpy_helper.to_array(i) for i in original.graph.initializer}
    new_values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    rewired = 0
    assert len(model.graph.node) == len(original.graph.node)
    for new, old in zip(model.graph.node, original.graph.node, strict=True):
        for a, b in zip(new.input, old.input, strict=True):
            if a == b:
                continue
            assert a in weights and "gate_head" in new.name
            while b in alias:
                b = alias[b]
            np.testing.assert_array_equal(new_values[a], old_values[b])
            rewired += 1
    assert rewired >= len(weights)


def test_deduplicated_unet_weight_is_copied_not_shared(fp32_export):
    """A gate LayerNorm left at ones is stored by the exporter as an Identity of a UNet norm weight."""
    model = onnx.load(str(fp32_export.out_dir / "unet.onnx"))
    node = next(n for n in model.graph.node if n.op_type == "LayerNormalization" and "gate_head" in n.name)
    unet_weight = next(i.name for i in model.graph.initializer if i.name.endswith("norm1.weight"))
    model.graph.node.insert(0, onnx.helper.make_node("Identity", [unet_weight], ["dedup_alias"]))
    node.input[1] = "dedup_alias"
    weights = find_gate_weights(model)
    assert unet_weight in weights
    isolate_gate_weights(model)
    assert node.input[1].startswith("maskattn.gate.")
    assert any(n.input and n.input[0] == unet_weight for n in model.graph.node if n.op_type == "Identity")


def test_new_gates_change_the_plan_and_wrong_checkpoints_are_refused(isolated, tmp_path):
    _, weights = isolated
    refit_map = {n: w.to_dict() for n, w in weights.items()}
    other = gated_tiny_unet(seed=7)
    plan, _ = plan_refit(refit_map, save_gates(other, tmp_path / "new.safetensors"))
    assert all(np.isfinite(v).all() for v in plan.values())
    with pytest.raises(CheckpointError, match="gates other sites than the engine"):
        plan_refit(refit_map, save_gates(gated_tiny_unet(config=GateConfig(stage="high")), tmp_path / "h.safetensors"))
    with pytest.raises(CheckpointError, match="shape"):
        plan_refit(refit_map, save_gates(gated_tiny_unet(config=GateConfig(hidden_size=64)), tmp_path / "s.safetensors"))
    with pytest.raises(CheckpointError, match="heads differ|no engine weight takes"):
        plan_refit(refit_map, save_gates(gated_tiny_unet(config=GateConfig(share_heads=False)),
                                         tmp_path / "p.safetensors"))
    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        plan_refit(refit_map, tmp_path / "bad.safetensors")


def test_gate_weight_values_differ_between_checkpoints(isolated, gated_unet, tmp_path):
    _, weights = isolated
    refit_map = {n: w.to_dict() for n, w in weights.items()}
    a, _ = plan_refit(refit_map, save_gates(gated_unet, tmp_path / "a.safetensors"))
    other = gated_tiny_unet(seed=9, logit_bias=-0.3)  # every gate parameter differs, the logit bias included
    b, _ = plan_refit(refit_map, save_gates(other, tmp_path / "b.safetensors"))
    assert all(not np.array_equal(a[n], b[n]) for n in a)
    assert {v.dtype for v in a.values()} == {np.dtype("float32")}
