"""Validate an exported graph: onnx checker + shape inference, and the graph shape MaskAttn requires.

Graph rules (DESIGN.md decisions 1 and 3):
- no ``IsNaN`` (torch's bool-mask attention export inserts ``Where(IsNaN)`` after Softmax, which breaks
  TensorRT's MatMul -> Add -> Softmax -> MatMul attention fusion; the gate uses a float additive mask);
- no Sigmoid computes a gate probability: the threshold is compared in logit space. The only Sigmoids left
  are SiLUs (``x * Sigmoid(x)``) of the UNet and of the gate MLPs;
- inputs and outputs carry the IO spec's dtypes (fp16 graphs are strongly typed: TensorRT 11 takes the
  precision from the ONNX types).
"""

from __future__ import annotations

import collections
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ExportError
from ..spec import DTYPES, ONNX_DTYPE_NAMES, UNetIOSpec


@dataclass
class GraphReport:
    """What the exported graph contains (stored in the export manifest)."""

    nodes: int
    op_counts: dict[str, int]
    isnan: int
    sigmoids: int
    silu_sigmoids: int
    gate_sigmoids: int
    inputs: dict[str, str]
    outputs: dict[str, str]
    initializers: dict[str, int] = field(default_factory=dict)
    initializer_bytes: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _is_silu(node, consumers) -> bool:
    """A Sigmoid whose output is multiplied by its own input: SiLU(x) = x * sigmoid(x)."""
    x, s = node.input[0], node.output[0]
    return any(c.op_type == "Mul" and set(c.input) == {x, s} for c in consumers.get(s, ()))


def graph_report(model) -> GraphReport:
    """Summarise a loaded ``onnx.ModelProto`` (external data need not be loaded)."""
    graph = model.graph
    ops = collections.Counter(node.op_type for node in graph.node)
    consumers: dict[str, list] = collections.defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    sigmoids = [n for n in graph.node if n.op_type == "Sigmoid"]
    silu = sum(_is_silu(n, consumers) for n in sigmoids)
    init_types = collections.Counter(ONNX_DTYPE_NAMES.get(t.data_type, str(t.data_type)) for t in graph.initializer)
    init_bytes = 0
    for tensor in graph.initializer:
        count = 1
        for dim in tensor.dims:
            count *= dim
        init_bytes += count * {1: 4, 10: 2, 11: 8, 7: 8, 6: 4, 9: 1, 16: 2}.get(tensor.data_type, 4)
    return GraphReport(
        nodes=len(graph.node),
        op_counts=dict(sorted(ops.items(), key=lambda kv: -kv[1])),
        isnan=ops.get("IsNaN", 0),
        sigmoids=len(sigmoids),
        silu_sigmoids=silu,
        gate_sigmoids=len(sigmoids) - silu,
        inputs={v.name: ONNX_DTYPE_NAMES.get(v.type.tensor_type.elem_type, "?") for v in graph.input},
        outputs={v.name: ONNX_DTYPE_NAMES.get(v.type.tensor_type.elem_type, "?") for v in graph.output},
        initializers=dict(init_types),
        initializer_bytes=init_bytes,
    )


def check_graph_shape(report: GraphReport, spec: UNetIOSpec, where: str) -> None:
    """Raise :class:`ExportError` when the graph breaks a MaskAttn graph rule or the IO spec."""
    problems = []
    if report.isnan:
        problems.append(f"{report.isnan} IsNaN node(s) (a bool attention mask was exported; the gate must add a "
                        "float mask before Softmax)")
    if report.gate_sigmoids:
        problems.append(f"{report.gate_sigmoids} Sigmoid node(s) outside SiLU (a gate probability is computed; the "
                        "threshold must be compared in logit space)")
    expected_in = _expected_inputs(spec)
    if report.inputs != expected_in:
        problems.append(f"inputs {report.inputs}, expected {expected_in}")
    expected_out = dict.fromkeys(spec.output_names, spec.dtype)
    if report.outputs != expected_out:
        problems.append(f"outputs {report.outputs}, expected {expected_out}")
    if problems:
        raise ExportError(f"exported graph {where} is not a valid MaskAttn UNet graph: {'; '.join(problems)}; "
                          "this is a bug in the exporter setup, please report it with the export manifest")


def _expected_inputs(spec: UNetIOSpec) -> dict[str, str]:
    names = {dtype: name for name, dtype in DTYPES.items()}
    return {name: names[dt] for name, dt in spec.input_dtypes().items()}


def check_onnx_file(path: str | Path) -> None:
    """onnx's checker with full shape inference, path-based so graphs over 2 GB (external data) work too."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"onnx checker rejected {path}: {first}; re-export with another --opset or report it") from exc
