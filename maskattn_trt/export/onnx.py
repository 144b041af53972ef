"""Export a (gated) diffusers SDXL UNet as one ONNX graph with the IO of a stock SDXL UNet.

Exporter choice (DESIGN.md decision 4; ``torch.onnx.export``'s default changed to dynamo in torch 2.9, so it
is always passed explicitly):

- ``torchscript`` (the default, ``dynamo=False``): 2.2 s instead of 38.6 s for the tiny UNet, a single
  self-contained file for small models, and a valid fp16 graph as is. ORT parity is the same (~1e-6 fp32).
- ``dynamo``: lower peak memory on the full SDXL UNet (10.3 vs 13.8 GiB fp32), for machines where that is
  the limit. Its fp16 graph is invalid as traced (``Concat(fp16 text_embeds, fp32 time_embeds)``), so the
  reversible :func:`~maskattn_trt.export.patches.cast_add_time_proj` patch is applied during export.

Precision: an fp16 export is strongly typed by its ONNX types (TensorRT 11 takes the precision from them).
The gate heads stay fp32 inside the fp16 graph: the LayerNorms over 1280/2048 channels and the logits that
are compared with the threshold would round (and could flip gates) in fp16, and the heads cost next to
nothing (h = 128). ``gate_heads="fp16"`` casts them to fp16 for targets without fp32 GEMMs (TensorRT-RTX on
Turing, SM75); gate agreement with fp32 heads is measured in tests/export/test_gate_heads_fp16.py. The
timestep input is fp32 as in diffusers. The additive mask is cast to fp16 before it
is added to the attention logits.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .. import artifacts as af
from ..errors import BadInputError, ExportError, NonFiniteError
from ..gates import (
    UNetGraph,
    check_gate_heads,
    gate_installation,
    gate_processors,
    gates_hash,
    unet_fingerprint,
)
from ..spec import INPUT_NAMES, UNetIOSpec
from ..utils.io import atomic_dir, claim_output_dir, sha256_file, write_json_atomic
from ..utils.progress import progress_bar
from .patches import cast_add_time_proj, gates_forced_open, quiet_exporter
from .validate import check_graph_shape, check_onnx_file, graph_report

EXPORTERS = ("torchscript", "dynamo")
# torch's dynamo exporter emits opset 18 and newer; asked for less it tries to down-convert, prints the
# converter's traceback and still writes opset 18. The TorchScript exporter writes the opset it is asked for.
DEFAULT_OPSET = {"torchscript": 17, "dynamo": 18}
MIN_OPSET = {"torchscript": 1, "dynamo": 18}
PROTOBUF_LIMIT = 2 * 1024**3  # a single ONNX protobuf cannot exceed 2 GB: weights go to external data
FP32_KEPT = ("gate heads (LayerNorm -> Linear -> SiLU -> Linear for features and tokens, logits, logit-space "
             "threshold) run in fp32: fp16 rounding could flip gates near the threshold; timestep input is fp32")
FP16_HEADS_KEPT = "timestep input is fp32; gate heads are fp16 (gate_heads='fp16', for targets without fp32 GEMMs)"


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    onnx_path: Path
    spec: UNetIOSpec
    manifest: dict
    seconds: float

    def summary(self) -> str:
        m = self.manifest
        size = sum(f["bytes"] for f in m["files"].values()) / 1e6
        gates = f"gates {m['gates_hash'][:12]}" if m.get("gates_hash") else ("gates open" if m["open_gates"] else
                                                                             "no gates")
        if m.get("component", "unet") != "unet":
            gates = m["component"]
        return (f"exported {self.onnx_path} ({m['dtype']}, opset {m['opset']}, {m['exporter']}, "
                f"{m['graph']['nodes']} nodes, {size:.1f} MB, {gates}) in {self.seconds:.1f} s; "
                f"IO spec and manifest beside it")


def resolve_opset(exporter: str, opset: int | None) -> int:
    """The opset to export with (None = the exporter's default), refused when the exporter cannot write it."""
    if exporter not in EXPORTERS:
        raise BadInputError(f"exporter must be one of {', '.join(EXPORTERS)}; got {exporter!r}")
    if opset is None:
        return DEFAULT_OPSET[exporter]
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < MIN_OPSET[exporter]:
        raise BadInputError(f"--opset {opset!r} cannot be written by the {exporter} exporter (it needs "
                            f">= {MIN_OPSET[exporter]}); pass --opset {DEFAULT_OPSET[exporter]} or leave it out")
    return opset


def saved_opset(model) -> int:
    """The default-domain opset a loaded ONNX model really declares (what the manifest records)."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _check_inputs(unet: nn.Module, spec: UNetIOSpec, exporter: str, gate_heads: str = "fp32") -> None:
    if exporter not in EXPORTERS:
        raise BadInputError(f"exporter must be one of {', '.join(EXPORTERS)}; got {exporter!r}")
    bad = sorted({site for site, proc in gate_processors(unet).items()
                  for p in proc.gate_head.parameters() if not torch.isfinite(p).all()})
    if bad:
        raise NonFiniteError(f"gate weights of {len(bad)} site(s) hold NaN or infinity (e.g. {bad[0]}); "
                             "retrain or load other gates before exporting")
    backbone = unet.conv_in.weight.dtype
    if backbone != spec.torch_dtype:
        raise BadInputError(
            f"the UNet is {backbone} but the IO spec asks for {spec.dtype}; cast it first with "
            f"maskattn_trt.gates.cast_unet(unet, {spec.dtype!r}) (keeps the gate heads fp32)"
        )
    check_gate_heads(spec.dtype, gate_heads)
    head_dtype = torch.float16 if gate_heads == "fp16" else torch.float32
    if any(p.dtype != head_dtype for proc in gate_processors(unet).values() for p in proc.gate_head.parameters()):
        raise BadInputError(f"gate heads must be {gate_heads} (fp32: they are compared with the threshold) for this "
                            f"export; use cast_unet(unet, {spec.dtype!r}, gate_heads={gate_heads!r}) instead of "
                            "unet.half()")
    installed = set(gate_processors(unet))
    missing = [s for s in spec.gate_sites if s not in installed]
    if missing:
        raise BadInputError(f"IO spec asks for gate outputs of {len(missing)} site(s) without gates "
                            f"(e.g. {missing[0]}); install gates or drop the gate outputs")


def _is_static(spec: UNetIOSpec) -> bool:
    return all(r.min == r.max for r in (spec.batch, spec.height, spec.width))


TRACE_LATENT_CAP = 32  # latent size a dynamic export traces at, at most (SDXL: 256 px)


def trace_shape(spec: UNetIOSpec) -> tuple[int, int, int]:
    """(batch, latent height, latent width) the exporter traces at. A static export traces its one shape. A
    dynamic one traces small (a 1024 px fp16 forward on CPU would dominate the export; every size is symbolic
    in the graph): latent at most 32 on the UNet's grid, and batch 2 where allowed so that no batch dimension
    of 1 is specialised into broadcasting."""
    if _is_static(spec):
        return spec.batch.opt, spec.height.opt, spec.width.opt
    step = spec.latent_multiple
    cap = max(step, TRACE_LATENT_CAP - TRACE_LATENT_CAP % step)
    return min(max(2, spec.batch.min), spec.batch.max), min(spec.height.min, cap), min(spec.width.min, cap)


def _trace(unet: nn.Module, spec: UNetIOSpec, path: Path, exporter: str, opset: int, open_gates: bool) -> None:
    feed = spec.dummy_inputs(*trace_shape(spec), seed=0, device=unet.conv_in.weight.device)
    args = tuple(feed[name] for name in INPUT_NAMES)
    axes = None if _is_static(spec) else spec.dynamic_axes()
    graph = UNetGraph(unet, spec).eval()
    common = dict(input_names=list(INPUT_NAMES), output_names=spec.output_names, opset_version=opset)
    with torch.no_grad(), quiet_exporter(), gates_forced_open(unet, open_gates):
        if exporter == "torchscript":
            torch.onnx.export(graph, args, str(path), dynamo=False, dynamic_axes=axes, do_constant_folding=True,
                              **common)
        else:
            with cast_add_time_proj(unet, spec.torch_dtype):
                torch.onnx.export(graph, args, str(path), dynamo=True, dynamic_axes=axes, external_data=True,
                                  optimize=True, **common)


def _slim(model):
    import onnxslim

    return onnxslim.slim(model)


def _save(model, path: Path, external: bool | None, size_bytes: int) -> bool:
    """Save a fully loaded model, as one file or with all weights in ``unet.onnx.data``."""
    import onnx

    external = _needs_external(external, size_bytes)
    if external:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=af.DATA_NAME, size_threshold=1024)
    else:
        onnx.save_model(model, str(path))
    return external


def _needs_external(external: bool | None, size_bytes: int) -> bool:
    return size_bytes > PROTOBUF_LIMIT - 64 * 1024**2 if external is None else external


def _stream_external(model, raw_dir: Path, path: Path, min_bytes: int = 1024) -> None:
    """Write ``model`` (loaded without its external data) with every weight in one ``unet.onnx.data``,
    copying tensors one at a time from the exporter's files: peak memory is one tensor, not the model."""
    import onnx

    offset = 0
    with open(path.parent / af.DATA_NAME, "wb") as data:
        for tensor in model.graph.initializer:
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                info = {e.key: e.value for e in tensor.external_data}
                with open(raw_dir / info["location"], "rb") as src:
                    src.seek(int(info.get("offset", 0)))
                    blob = src.read(int(info["length"])) if "length" in info else src.read()
            elif tensor.HasField("raw_data") and len(tensor.raw_data) >= min_bytes:
                blob = tensor.raw_data
            else:
                continue
            data.write(blob)
            del tensor.external_data[:]
            tensor.ClearField("raw_data")
            for key, value in (("location", af.DATA_NAME), ("offset", offset), ("length", len(blob))):
                tensor.external_data.add(key=key, value=str(value))
            tensor.data_location = onnx.TensorProto.EXTERNAL
            offset += len(blob)
    onnx.save_model(model, str(path))


def export_unet(unet: nn.Module, out_dir: str | Path, spec: UNetIOSpec, *, opset: int | None = None,
                exporter: str = "torchscript", slim: bool = True, open_gates: bool = False,
                external_data: bool | None = None, source: dict | None = None, progress: bool = True,
                gate_heads: str = "fp32", force: bool = False) -> ExportResult:
    """Export ``unet`` (gates installed or not) to ``out_dir``: ``unet.onnx`` (+ ``unet.onnx.data`` over 2 GB),
    ``io_spec.json`` and ``manifest.json``. Written atomically: a failure leaves no folder at ``out_dir``
    (an existing export there is kept until the new one is complete).

    ``spec`` gives dtype, ranges (all min == max: static shapes) and gate outputs (``spec.with_gate_outputs``).
    ``open_gates`` exports a stock-equivalent graph (gates forced open, the heads left out). ``source`` is
    recorded in the manifest (``model``, ``seed``, ``gate_checkpoint``) so ``parity`` can rebuild the reference.
    ``gate_heads``: the dtype the gate heads were cast to (``cast_unet``); fp16 only in an fp16 export.
    ``out_dir`` may be new, empty or a previous export; anything else only with ``force``. ``opset`` None = the
    exporter's default (torchscript 17, dynamo 18); the manifest records the opset read back from the file.
    """
    import onnx

    opset = resolve_opset(exporter, opset)
    _check_inputs(unet, spec, exporter, gate_heads)
    out_dir = claim_output_dir(out_dir, ours=af.is_export_folder, what="a previous export (no export "
                               "manifest.json)", force=force)
    start = time.perf_counter()
    steps = ["trace", "slim", "save", "check", "manifest"] if slim else ["trace", "save", "check", "manifest"]
    bar = progress_bar(progress, total=len(steps), desc=f"export {spec.dtype}", leave=False)
    timings = {}

    def step(name):
        timings[name] = round(time.perf_counter() - step.t, 2)
        step.t = time.perf_counter()
        bar.set_postfix_str(name)
        bar.update(1)

    step.t = start
    try:
        with atomic_dir(out_dir) as tmp:
            raw = tmp / ".raw"
            raw.mkdir()
            try:
                _trace(unet, spec, raw / af.ONNX_NAME, exporter, opset, open_gates)
            except (RuntimeError, TypeError, ValueError) as exc:
                raise ExportError(f"torch.onnx.export ({exporter}) failed: {str(exc).splitlines()[0]}; try "
                                  f"--exporter {'dynamo' if exporter == 'torchscript' else 'torchscript'}") from exc
            step("trace")
            onnx_path = tmp / af.ONNX_NAME
            if slim:
                model = _slim(onnx.load(str(raw / af.ONNX_NAME)))
                step("slim")
                opset = saved_opset(model)
                report = graph_report(model)
                external = _save(model, onnx_path, external_data, report.initializer_bytes)
            else:  # weights are never all in memory twice: stream them from the exporter's files
                model = onnx.load(str(raw / af.ONNX_NAME), load_external_data=False)
                opset = saved_opset(model)
                report = graph_report(model)
                external = _needs_external(external_data, report.initializer_bytes)
                if external:
                    _stream_external(model, raw, onnx_path)
                else:
                    onnx.load_external_data_for_model(model, str(raw))
                    onnx.save_model(model, str(onnx_path))
            del model
            shutil.rmtree(raw)
            step("save")
            check_onnx_file(onnx_path)
            check_graph_shape(report, spec, str(out_dir / af.ONNX_NAME))
            step("check")
            spec.save(tmp / af.IO_SPEC_NAME)
            manifest = _manifest(unet, tmp, spec, report, exporter=exporter, opset=opset, slim=slim,
                                 open_gates=open_gates, external=external, source=source or {}, gate_heads=gate_heads,
                                 seconds=time.perf_counter() - start, timings=timings)
            write_json_atomic(tmp / af.MANIFEST_NAME, manifest)
            step("manifest")
    finally:
        bar.close()
    return ExportResult(out_dir, out_dir / af.ONNX_NAME, spec, manifest, time.perf_counter() - start)


def _manifest(unet, folder: Path, spec: UNetIOSpec, report, *, exporter, opset, slim, open_gates, external, source,
              seconds, timings, gate_heads="fp32") -> dict:
    installation = gate_installation(unet)
    files = {}
    for name in (af.ONNX_NAME, af.DATA_NAME) if external else (af.ONNX_NAME,):
        files[name] = {"bytes": (folder / name).stat().st_size, "sha256": sha256_file(folder / name)}
    gate_ckpt = source.get("gate_checkpoint")
    return {
        "format": af.EXPORT_FORMAT,
        "component": "unet",
        "created": af.now_utc(),
        "onnx": af.ONNX_NAME,
        "onnx_sha256": files[af.ONNX_NAME]["sha256"],
        "files": files,
        "external_data": bool(external),
        "dtype": spec.dtype,
        "fp32_kept": (FP16_HEADS_KEPT if gate_heads == "fp16" else FP32_KEPT) if spec.dtype == "fp16" else None,
        "gate_heads": gate_heads if installation is not None and not open_gates else None,
        "opset": opset,
        "exporter": exporter,
        "slimmed": slim,
        "static": _is_static(spec),
        "open_gates": bool(open_gates),
        "gates_hash": gates_hash(unet) if installation is not None and not open_gates else None,
        "gates": installation.to_dict() if installation is not None else None,
        "gate_checkpoint": {"path": str(Path(gate_ckpt).resolve()), "sha256": sha256_file(gate_ckpt)}
        if gate_ckpt else None,
        "gate_outputs": list(spec.gate_sites),
        "unet_fingerprint": unet_fingerprint(unet),
        "model": source.get("model"),
        "seed": source.get("seed"),
        "graph": report.to_dict(),
        "export_seconds": round(seconds, 2),
        "step_seconds": timings,
        "versions": af.package_versions(),
    }
