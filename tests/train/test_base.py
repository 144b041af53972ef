"""The base-model recipe (train/tiny_base.toml) runs a few steps end to end and leaves a loadable SDXL folder."""

import json
import subprocess
import sys
from dataclasses import asdict, fields, replace
from pathlib import Path

import pytest
import torch

from maskattn_trt.errors import ConfigError
from maskattn_trt.models.loading import default_side, load_pipeline, vae_scale_of
from maskattn_trt.models.shipped import shipped_model_dir
from maskattn_trt.train.base import MANIFEST_NAME, load_base_recipe, restart_recipes
from maskattn_trt.utils.io import sha256_file

RECIPE = Path(__file__).resolve().parents[2] / "train" / "tiny_base.toml"
FEW_STEPS = ["data.size=32", "data.samples=8", "vae.steps=2", "vae.batch=2", "unet.steps=2", "unet.batch=2",
             "unet.warmup=1", "train.threads=1", "unet.restarts=[]"]


def _train_base(*args, steps=FEW_STEPS):
    return subprocess.run([sys.executable, "-m", "maskattn_trt.cli", "train-base", "--recipe", str(RECIPE), *args,
                           *[a for s in steps for a in ("--set", s)]], capture_output=True, text=True, timeout=300)


def _refused(capsys, *args) -> str:
    """Run train-base in-process (a refusal never trains: no need for a fresh interpreter); its stderr."""
    from maskattn_trt.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train-base", *args])
    assert exit_info.value.code != 0
    return capsys.readouterr().err


def test_a_few_steps_of_the_recipe_give_a_loadable_model_with_its_manifest(tmp_path, capsys):
    proc = _train_base("--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    model = tmp_path / "run" / "model"
    manifest = json.loads((model / MANIFEST_NAME).read_text())
    assert manifest["vae"]["steps"] == 2 and manifest["unet"]["steps"] == 2
    assert manifest["recipe"]["data_size"] == 32 and manifest["data_version"]
    for name, entry in manifest["files"].items():
        assert sha256_file(model / name) == entry["sha256"], name
    assert not list((tmp_path / "run").glob(".*partial"))
    pipe = load_pipeline(str(model))
    assert vae_scale_of(str(model)) == 4 and default_side(str(model)) == 32  # draws at the size it learned
    assert pipe.tokenizer.tokenize("a red circle above a blue star") == ["a</w>", "red</w>", "circle", "above</w>",
                                                                           "a</w>", "blue</w>", "star"]
    assert pipe.unet.config.sample_size == 8
    # a second run into the same folder is refused unless it is ours (it is): a stranger's folder is refused
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    assert "--force" in _refused(capsys, "--out", str(stranger)) and (stranger / "notes.txt").exists()

    # --init continues the UNet: VAE and text encoder weights kept byte for byte, steps added up, the first run recorded
    proc = _train_base("--init", str(model), "--out", str(tmp_path / "run2"), steps=[*FEW_STEPS, "unet.steps=3"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    second = json.loads((tmp_path / "run2" / "model" / MANIFEST_NAME).read_text())
    assert second["unet"]["steps"] == 3 and second["unet"]["total_steps"] == 5
    assert second["continued_from"]["unet"]["steps"] == 2 and "files" not in second["continued_from"]
    for name, entry in manifest["files"].items():
        if name.endswith(".safetensors") and not name.startswith("unet/"):
            assert second["files"][name]["sha256"] == entry["sha256"], name
    assert second["files"]["unet/diffusion_pytorch_model.safetensors"] != manifest["files"][
        "unet/diffusion_pytorch_model.safetensors"]
    # a continued run must keep the model and the data; writing over the --init model is refused
    err = _refused(capsys, "--recipe", str(RECIPE), "--init", str(model), "--out", str(tmp_path / "run3"))
    assert "data.size=32, this recipe 128" in err and not (tmp_path / "run3").exists()  # recipe default: 128 px
    # unet.restarts: one command = the chain of --init runs, weight for weight (the phase before kept beside)
    proc = _train_base("--out", str(tmp_path / "one"), steps=[*FEW_STEPS, "unet.restarts=[{steps = 3}]"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    one = json.loads((tmp_path / "one" / "model" / MANIFEST_NAME).read_text())
    phase1 = json.loads((tmp_path / "one" / "phase1" / "model" / MANIFEST_NAME).read_text())
    for name in manifest["files"]:
        if name.endswith(".safetensors"):
            assert phase1["files"][name]["sha256"] == manifest["files"][name]["sha256"], name
            assert one["files"][name]["sha256"] == second["files"][name]["sha256"], name
    assert one["unet"]["total_steps"] == 5 and one["recipe"]["unet_restarts"] == []
    # text.lr > 0 trains the text encoders with the UNet (their EMA ships); the VAE stays as it was
    proc = _train_base("--init", str(model), "--out", str(tmp_path / "run4"), steps=[*FEW_STEPS, "text.lr=1e-2"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    fourth = json.loads((tmp_path / "run4" / "model" / MANIFEST_NAME).read_text())
    assert fourth["unet"]["text_encoders"] == "trained" and second["unet"]["text_encoders"] == "frozen"
    for name in ("text_encoder/model.safetensors", "text_encoder_2/model.safetensors"):
        assert fourth["files"][name]["sha256"] != manifest["files"][name]["sha256"], name
    assert fourth["files"]["vae/diffusion_pytorch_model.safetensors"] == manifest["files"][
        "vae/diffusion_pytorch_model.safetensors"]
    err = _refused(capsys, "--init", str(model), "--out", str(tmp_path / "run"), "--force")
    assert "new folder" in err and sha256_file(
        model / "unet" / "diffusion_pytorch_model.safetensors") == manifest["files"][
        "unet/diffusion_pytorch_model.safetensors"]["sha256"]


def test_caption_conditioning_is_what_the_pipeline_encodes_and_trains_the_encoders_when_asked():
    from maskattn_trt.models.tiny import tiny_sdxl_pipeline
    from maskattn_trt.train.base import CaptionConditioning

    pipe = tiny_sdxl_pipeline(0)
    captions = ["a red circle", "a blue star above a green square", "a red circle"]
    frozen = CaptionConditioning(pipe, captions)
    assert len(frozen) == 2
    embeds, pooled = frozen(torch.tensor([2, 1]))
    want, _, want_pooled, _ = pipe.encode_prompt([captions[2], captions[1]], device="cpu",
                                                 do_classifier_free_guidance=False)
    torch.testing.assert_close(embeds, want, rtol=0, atol=0)
    torch.testing.assert_close(pooled, want_pooled, rtol=0, atol=0)
    trained = CaptionConditioning(pipe, captions, trained=True)
    embeds, pooled = trained(torch.tensor([2, 1]))
    torch.testing.assert_close(embeds, want)
    (embeds.square().mean() + pooled.square().mean()).backward()
    for encoder in (pipe.text_encoder, pipe.text_encoder_2):
        assert encoder.get_input_embeddings().weight.grad.abs().sum() > 0


def test_unknown_key_and_wrong_type_are_named():
    with pytest.raises(ConfigError, match="unet.stepz"):
        load_base_recipe(RECIPE, ["unet.stepz=3"])
    with pytest.raises(ConfigError, match="vae.channels"):
        load_base_recipe(RECIPE, ["vae.channels=3"])
    with pytest.raises(ConfigError, match="multiple of"):
        load_base_recipe(RECIPE, ["data.size=40"])
    with pytest.raises(ConfigError, match="'vae.steps' cannot change in a continuation"):
        load_base_recipe(None, ["unet.restarts=[{steps = 3, vae = {steps = 2}}]"])
    with pytest.raises(ConfigError, match="unet.lr must be float"):
        load_base_recipe(None, ['unet.restarts=[{lr = "fast"}]'])
    chain = load_base_recipe(None, ["unet.restarts=[{steps = 9, lr = 2e-4}, {steps = 4, text = {lr = 1e-3}}]"])
    assert chain.unet_restarts == ((("unet_steps", 9), ("unet_lr", 2e-4)), (("unet_steps", 4), ("text_lr", 1e-3)))
    assert load_base_recipe(RECIPE, ["unet.restarts=[]"]) == load_base_recipe(None)  # the file: defaults + restarts


def test_the_recipe_file_is_the_chain_the_shipped_base_was_trained_with():
    """`train-base --recipe train/tiny_base.toml` reproduces the shipped base: its first run and each
    [[unet.restarts]] entry are, key for key, the recipes recorded in the shipped manifest's chain (oldest first).
    Time limits, thread counts and logging are left out: they do not choose the weights."""
    record, chain = json.loads((shipped_model_dir("tiny") / MANIFEST_NAME).read_text()), []
    while record is not None:
        chain.insert(0, record["recipe"])
        record = record.get("continued_from")
    recipe = load_base_recipe(RECIPE)
    phases = [replace(recipe, unet_restarts=()), *restart_recipes(recipe)]
    assert len(phases) == len(chain), f"recipe has {len(phases)} runs, the shipped base {len(chain)}"
    keys = [f.name for f in fields(recipe) if f.name not in {"unet_restarts", "train_max_minutes", "train_threads",
                                                             "train_log_every"}]
    for k, (phase, shipped) in enumerate(zip(phases, chain, strict=True)):
        mine = asdict(phase)
        for key in keys:  # text_lr predates the first run's manifest: absent there means frozen (0.0)
            want = shipped.get(key, 0.0 if key == "text_lr" else None)
            assert mine[key] == (tuple(want) if isinstance(want, list) else want), (k, key)
