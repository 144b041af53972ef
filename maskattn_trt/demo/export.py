"""Demo stage: export the gated tiny UNet (its trained gates) as one ONNX graph and prove parity eager vs ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

from ..artifacts import open_export
from ..export import export_unet
from ..gates import gate_installation, recording_gate_margins, save_gates
from ..parity import compare_runners, parity_feeds
from ..runners import EagerRunner, OrtRunner
from ..spec import UNetIOSpec


def demo_stage(state) -> list[str]:
    unet = state.pipe.unet
    installation = gate_installation(unet)
    if installation is None:
        return ["skipped: the tiny UNet has no gates (the gates stage did not run)"]
    # The gates as they are now, so `maskattn-trt parity --onnx` can rebuild the same reference from the manifest.
    gates_path = save_gates(unet, Path(state.out_dir) / "gates_exported.safetensors")
    spec = UNetIOSpec.for_unet(unet, vae_scale=state.pipe.vae_scale_factor).with_gate_outputs(list(installation.sites))
    result = export_unet(unet, Path(state.out_dir) / "onnx", spec, progress=False,
                         source={"model": state.model, "seed": state.seed, "gate_checkpoint": str(gates_path)})
    state.onnx_dir = result.out_dir
    graph = result.manifest["graph"]
    lines = [result.summary(),
             f"graph: IsNaN {graph['isnan']}, gate sigmoids {graph['gate_sigmoids']} (all {graph['sigmoids']} "
             f"Sigmoids are SiLUs), {len(spec.gate_sites)} gate outputs; dynamic batch {spec.batch}, "
             f"latent {spec.height} x {spec.width}"]
    feeds = parity_feeds(spec, state.pipe, seed=state.seed)
    with recording_gate_margins(unet) as margins:
        report = compare_runners(EagerRunner(unet, spec), {"onnxruntime": OrtRunner(open_export(result.out_dir))}, feeds,
                                 progress=False, reference_margins=margins)
    lines += report.table()
    tol = report.tolerances["onnxruntime"]
    lines.append(f"parity {'passed' if report.passed else 'FAILED'} (tolerances: max abs <= {tol['noise_pred'][0]:g}, "
                 f"rel L2 <= {tol['noise_pred'][1]:g}, gate agreement >= {tol['gate_agreement']}); "
                 f"re-run: maskattn-trt parity --onnx {result.out_dir}")
    return lines
