"""Export the pipeline's other graphs: both CLIP text encoders and the VAE decoder, one folder each.

Same conventions as the UNet (:mod:`maskattn_trt.export.onnx`): TorchScript exporter chosen explicitly,
dynamic axes from the IO spec, onnxslim, onnx checker, IO dtypes checked against the spec, ``io_spec.json`` +
``manifest.json`` (recording ``component``), the folder written atomically.

The SDXL VAE overflows in fp16 (why pipelines keep it fp32 or use an fp16-fixed VAE): the VAE decoder is
exported fp32 by default; an fp16 export is decoded once on a real latent (the VAE's own encoding of a
synthetic test image), eagerly in fp16 and with ONNX Runtime, and refused when the image is not finite.
"""

from __future__ import annotations

import copy
import shutil
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from .. import artifacts as af
from ..component_spec import IMAGE, LATENT, VaeDecoderIOSpec
from ..errors import BadInputError, ExportError
from ..models import component_graph, quiet_diffusers
from ..runners import OrtRunner
from ..spec import DTYPE_TABLE
from ..utils.io import atomic_dir, ensure_writable_dir, sha256_file, write_json_atomic
from .onnx import ExportResult, _needs_external, _slim, trace_shape
from .patches import quiet_exporter
from .validate import check_onnx_file, graph_report

_NAMES = {torch_dtype: name for name, (torch_dtype, _, _) in DTYPE_TABLE.items()}


def _trace_feed(spec, device) -> dict[str, torch.Tensor]:
    if hasattr(spec, "height"):  # the VAE decoder: trace small, every size is symbolic
        batch, height, width = trace_shape(spec)
        return spec.dummy_inputs(batch, height, width, seed=0, device=device)
    batch = min(max(2, spec.batch.min), spec.batch.max)  # no batch of 1 specialised into broadcasting
    return spec.dummy_inputs(batch, seed=0, device=device)


def _check_io(report, spec, where: str) -> None:
    expected_in = {name: _NAMES[dt] for name, dt in spec.input_dtypes().items()}
    expected_out = {name: _NAMES[dt] for name, dt in spec.output_dtypes().items()}
    if report.inputs != expected_in or report.outputs != expected_out:
        raise ExportError(f"exported {spec.component} graph {where} has inputs {report.inputs} / outputs "
                          f"{report.outputs}, expected {expected_in} / {expected_out}; please report this bug")


def real_latent(vae: nn.Module, spec: VaeDecoderIOSpec, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(latent, fp32 image): a latent the sampler could produce — the VAE's fp32 encoding of a smooth synthetic
    image (gradients and a disc), in sampler space — and its fp32 eager decode (the reference)."""
    px_h, px_w = height * spec.vae_scale, width * spec.vae_scale
    y, x = torch.meshgrid(torch.linspace(-1, 1, px_h), torch.linspace(-1, 1, px_w), indexing="ij")
    disc = ((x - 0.2) ** 2 + (y + 0.1) ** 2 < 0.25).float()
    image = torch.stack([x, y, disc * 2 - 1]).unsqueeze(0).clamp(-1, 1)
    fp32 = vae
    if next(vae.parameters()).dtype != torch.float32:
        with quiet_diffusers():
            fp32 = copy.deepcopy(vae).float()
    device = next(fp32.parameters()).device
    with torch.inference_mode():
        latent = fp32.encode(image.to(device)).latent_dist.mean.float()
        if spec.latents_mean is not None:
            mean = torch.tensor(spec.latents_mean, device=device).view(1, -1, 1, 1)
            std = torch.tensor(spec.latents_std, device=device).view(1, -1, 1, 1)
            latent = (latent - mean) * spec.scaling_factor / std
        else:
            latent = latent * spec.scaling_factor
        reference = component_graph(fp32, spec.replace(dtype="fp32"))(latent)
    return latent.cpu(), reference.float().cpu()


def check_fp16_decode(folder: Path, module: nn.Module, spec: VaeDecoderIOSpec, latent: torch.Tensor,
                      reference: torch.Tensor) -> dict:
    """Decode a real ``latent`` in fp16 twice — eagerly (every intermediate tensor stored in fp16, as on a GPU)
    and with the exported graph in ONNX Runtime — and refuse the export when either image is not finite.

    The eager decode is the telling one on a CPU: ONNX Runtime's CPU provider has few fp16 kernels, wraps the
    others in Casts to fp32 and removes the Cast pairs between them, so intermediates never overflow there.
    """
    with torch.inference_mode():
        eager = component_graph(module, spec)(latent.to(next(module.parameters()).device, spec.torch_dtype))
    with OrtRunner(af.open_export(folder, component="vae_decoder"), providers="cpu") as runner:
        graph = runner.infer({LATENT: latent})[IMAGE]
    for label, image in (("eager fp16", eager), ("ONNX Runtime", graph)):
        bad = int((~torch.isfinite(image.float())).sum())
        if bad:
            raise ExportError(f"the fp16 VAE decoder ({label}) decodes a real latent {tuple(latent.shape)} to an image "
                              f"with {bad} non-finite value(s) (fp16 overflow, known for the SDXL VAE); keep "
                              "--vae-dtype fp32 (the default) or export an fp16-fixed VAE (e.g. "
                              "madebyollin/sdxl-vae-fp16-fix)")
    return {"latent_shape": list(latent.shape), "finite": True,
            "max_abs_vs_fp32": {"eager_fp16": float((eager.float().cpu() - reference).abs().max()),
                                "onnxruntime": float((graph.float() - reference).abs().max())},
            "image_min": float(eager.float().min()), "image_max": float(eager.float().max())}


def export_component(module: nn.Module, out_dir: str | Path, spec, *, opset: int = 17, slim: bool = True,
                     source: dict | None = None, progress: bool = True) -> ExportResult:
    """Export a text encoder or the VAE decoder (``module`` is the diffusers module: CLIP text encoder or
    AutoencoderKL, already in ``spec.dtype``) to ``out_dir``; written atomically, checked, with a manifest."""
    import onnx
    from tqdm.auto import tqdm

    weights = next(module.parameters()).dtype
    if weights != spec.torch_dtype:
        raise BadInputError(f"the {spec.component} is {weights} but the IO spec asks for {spec.dtype}; cast it first")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"output path {out_dir} exists and is not a folder; choose another output folder")
    if out_dir.exists():
        ensure_writable_dir(out_dir)
    name = af.onnx_name(spec.component)
    start = time.perf_counter()
    graph = component_graph(module, spec)
    device = next(module.parameters()).device
    feed = _trace_feed(spec, device)
    check = {}
    with tqdm(total=3, desc=f"export {spec.component} {spec.dtype}", disable=not progress, leave=False) as bar:
        with atomic_dir(out_dir) as tmp:
            raw_dir = tmp / ".raw"  # over 2 GB (SDXL's text_encoder_2 in fp32) the exporter writes weight files here
            raw_dir.mkdir()
            raw = raw_dir / name
            try:
                with torch.no_grad(), quiet_exporter(), warnings.catch_warnings():
                    # CLIP's pooled output gathers the EOS position found by argmax: never a negative index
                    warnings.filterwarnings("ignore", message=".*aten::index operator of advanced indexing.*")
                    torch.onnx.export(graph, tuple(feed[n] for n in spec.input_names), str(raw), dynamo=False,
                                      input_names=list(spec.input_names), output_names=list(spec.output_names),
                                      dynamic_axes=spec.dynamic_axes(), opset_version=opset,
                                      do_constant_folding=True)
            except (RuntimeError, TypeError, ValueError) as exc:
                raise ExportError(f"torch.onnx.export of the {spec.component} failed: "
                                  f"{str(exc).splitlines()[0]}") from exc
            bar.update(1)
            model = onnx.load(str(raw))  # with its external data, if the exporter wrote any
            shutil.rmtree(raw_dir)
            report = graph_report(model)
            slimmed = slim and not _needs_external(None, report.initializer_bytes)  # onnxslim fails over 2 GB
            if slimmed:
                model = _slim(model)
                report = graph_report(model)
            external = _needs_external(None, report.initializer_bytes)
            if external:
                onnx.save_model(model, str(tmp / name), save_as_external_data=True, all_tensors_to_one_file=True,
                                location=af.data_name(spec.component), size_threshold=1024)
            else:
                onnx.save_model(model, str(tmp / name))
            del model
            check_onnx_file(tmp / name)
            _check_io(report, spec, str(out_dir / name))
            bar.update(1)
            spec.save(tmp / af.IO_SPEC_NAME)
            if spec.component == "vae_decoder" and spec.dtype == "fp16":
                latent, reference = real_latent(module, spec, spec.height.opt, spec.width.opt)
                check = check_fp16_decode(tmp, module, spec, latent, reference)
            files = {}
            for fname in (name, af.data_name(spec.component)) if external else (name,):
                files[fname] = {"bytes": (tmp / fname).stat().st_size, "sha256": sha256_file(tmp / fname)}
            source = source or {}
            manifest = {
                "format": af.EXPORT_FORMAT, "component": spec.component, "created": af.now_utc(), "onnx": name,
                "onnx_sha256": files[name]["sha256"], "files": files, "external_data": bool(external),
                "dtype": spec.dtype, "opset": opset, "exporter": "torchscript", "slimmed": slimmed,
                "static": all(getattr(spec, k).min == getattr(spec, k).max for k in spec.DIMS),
                "open_gates": False, "gates_hash": None, "gates": None, "gate_checkpoint": None,
                "model": source.get("model"), "seed": source.get("seed"), "graph": report.to_dict(),
                "fp16_decode_check": check or None,
                "export_seconds": round(time.perf_counter() - start, 2), "versions": af.package_versions(),
            }
            write_json_atomic(tmp / af.MANIFEST_NAME, manifest)
            bar.update(1)
    return ExportResult(out_dir, out_dir / name, spec, manifest, time.perf_counter() - start)

