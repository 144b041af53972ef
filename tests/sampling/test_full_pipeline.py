"""The whole pipeline on ONNX Runtime: text encoders, UNet and VAE decoder from one export tree.

The tree reuses the session's gated UNet export (``fp32_export``) and adds the three other components
(exported once per module, seconds)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from maskattn_trt.artifacts import open_export
from maskattn_trt.errors import BadInputError
from maskattn_trt.export.from_model import ExportRequest, export_components
from maskattn_trt.runners import OrtRunner
from maskattn_trt.sampling.backends import parse_components
from maskattn_trt.sampling.generate import GenerateRequest, generate
from maskattn_trt.sampling.prompts import PromptEntry
from maskattn_trt.sampling.sampler import SampleSettings
from maskattn_trt.sampling.text import PromptEncoder

PROMPT = "a red cat on a blue sofa"
SETTINGS = SampleSettings(steps=4, guidance=5.0, height=64, width=64)


@pytest.fixture(scope="module")
def tree(fp32_export, tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline") / "tiny_pipeline"
    root.mkdir()
    shutil.copytree(fp32_export.out_dir, root / "unet")
    for component in ("text_encoder", "text_encoder_2", "vae_decoder"):
        export_components(ExportRequest(model="tiny-random", out=root / component, component=component), progress=False)
    return root


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _generate(out, **kwargs):
    request = GenerateRequest(model="tiny-random", prompts=(PromptEntry(PROMPT),), out=out, settings=SETTINGS, seed=3, progress=False,
                              **kwargs)
    report = generate(request)
    png = report.images[0]
    return np.asarray(Image.open(png)), json.loads(png.with_suffix(".json").read_text()), report


def test_full_onnxruntime_generation_matches_eager(tree, gates_checkpoint, tmp_path):
    gates_path = gates_checkpoint
    eager, eager_meta, _ = _generate(tmp_path / "eager", gates=gates_path)
    full, meta, report = _generate(tmp_path / "ort", backend="onnxruntime", onnx=tree)
    assert meta["components"] == dict.fromkeys(("unet", "text_encoder", "text_encoder_2", "vae_decoder"),
                                               "onnxruntime")
    assert eager_meta["components"]["vae_decoder"] == "eager"
    assert report.components == meta["components"]
    psnr = _psnr(eager, full)
    assert psnr >= 40.0, f"eager vs full ONNX Runtime image PSNR {psnr:.1f} dB < 40 dB"
    unet_only, unet_meta, _ = _generate(tmp_path / "unet_only", backend="onnxruntime", onnx=tree, components="unet")
    assert unet_meta["components"] == {"unet": "onnxruntime", "text_encoder": "eager", "text_encoder_2": "eager",
                                       "vae_decoder": "eager"}
    assert _psnr(eager, unet_only) >= 40.0


def test_prompt_encoding_through_runners_matches_diffusers(tree, tiny_pipe):
    with torch.inference_mode():
        embeds, negative, pooled, negative_pooled = tiny_pipe.encode_prompt(
            PROMPT, device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=True)
    eager = PromptEncoder(tiny_pipe)(PROMPT)
    assert torch.equal(eager.embeds, embeds) and torch.equal(eager.pooled, pooled)  # bit-identical to diffusers
    assert torch.equal(eager.negative_embeds, negative) and torch.equal(eager.negative_pooled, negative_pooled)
    runners = {c: OrtRunner(open_export(tree / c), providers="cpu") for c in ("text_encoder", "text_encoder_2")}
    for runner in runners.values():
        runner.__enter__()
    try:
        onnx = PromptEncoder(tiny_pipe, runners=runners)(PROMPT)
    finally:
        for runner in runners.values():
            runner.__exit__(None, None, None)
    for ours, ref in ((onnx.embeds, embeds), (onnx.pooled, pooled)):
        assert ours.shape == ref.shape
        assert float((ours - ref).norm() / ref.norm()) <= 1e-5


def test_components_are_chosen_explicitly_and_missing_ones_are_refused(tree, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copytree(tree / "unet", partial / "unet")
    shutil.copytree(tree / "vae_decoder", partial / "vae_decoder")
    settings = SampleSettings(steps=1, guidance=1.0, height=64, width=64)
    request = GenerateRequest(model="tiny-random", prompts=(PromptEntry(PROMPT),), out=tmp_path / "out", settings=settings,
                              backend="onnxruntime", onnx=partial, components="all", progress=False)
    with pytest.raises(BadInputError, match="holds no text_encoder, text_encoder_2"):
        generate(request)
    report = generate(GenerateRequest(model="tiny-random", prompts=(PromptEntry(PROMPT),), out=tmp_path / "out", settings=settings,
                                      backend="onnxruntime", onnx=partial, progress=False))
    assert report.components["vae_decoder"] == "onnxruntime" and report.components["text_encoder"] == "eager"
    with pytest.raises(BadInputError, match="holds the vae_decoder, not a UNet"):
        generate(GenerateRequest(model="tiny-random", prompts=(PromptEntry(PROMPT),), out=tmp_path / "out", settings=settings,
                                 backend="onnxruntime", onnx=tree / "vae_decoder", progress=False))
    with pytest.raises(BadInputError, match="includes unet"):
        parse_components("text_encoder,vae_decoder")


def test_image_sizes_outside_the_vae_export_are_refused_before_any_work(tree, tmp_path):
    settings = SampleSettings(steps=1, guidance=1.0, height=64, width=192)  # UNet allows 128 px at most too
    with pytest.raises(BadInputError, match="outside the exported range"):
        generate(GenerateRequest(model="tiny-random", prompts=(PromptEntry(PROMPT),), out=tmp_path / "out", settings=settings,
                                 backend="onnxruntime", onnx=tree, progress=False))
    assert not list((tmp_path / "out").glob("*.png"))


def test_cli_generate_reports_who_ran_each_component(run_cli, tree, tmp_path):
    code, out, err = run_cli("generate", "--model", "tiny-random", "--backend", "onnxruntime", "--onnx", tree, "--components",
                             "unet,vae_decoder", "--prompt", PROMPT, "--steps", "2", "--out", tmp_path, "--no-progress")
    assert code == 0, err
    assert "(onnxruntime: unet, vae_decoder; eager: text_encoder, text_encoder_2)" in out
    code, _, err = run_cli("generate", "--model", "tiny-random", "--backend", "onnxruntime", "--onnx", tree, "--components", "vae_decoder",
                           "--prompt", PROMPT, "--out", tmp_path)
    assert code != 0 and "includes unet" in err
