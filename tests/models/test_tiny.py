"""The offline tiny SDXL pipeline and --model loading."""

import json

import pytest
import torch

from maskattn_trt.errors import ModelLoadError
from maskattn_trt.gates import stage_of
from maskattn_trt.models import load_pipeline, load_unet, tiny_tokenizer


def test_tiny_pipeline_is_a_real_sdxl_pipeline_with_every_stage(tiny_pipe):
    from diffusers import StableDiffusionXLPipeline

    assert isinstance(tiny_pipe, StableDiffusionXLPipeline)
    unet = tiny_pipe.unet
    assert unet.config.addition_embed_type == "text_time"
    stages = {stage_of(name) for name in unet.attn_processors if ".attn2." in name}
    assert stages == {"high", "mid", "low"}
    assert unet.config.cross_attention_dim == (
        tiny_pipe.text_encoder.config.hidden_size + tiny_pipe.text_encoder_2.config.hidden_size)


def test_shipped_vocabulary_tokenizes_captions_into_words():
    tok = tiny_tokenizer()
    ids = tok("a photo of a red cat on a bench").input_ids
    assert tok.convert_ids_to_tokens(ids)[1:-1] == [w + "</w>" for w in "a photo of a red cat on a bench".split()]


def test_tiny_pipeline_survives_save_and_reload_without_network(tiny_pipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tiny_pipe.save_pretrained(tmp_path / "sdxl")
    loaded = load_pipeline(str(tmp_path / "sdxl"))
    kwargs = dict(prompt="a red cat", num_inference_steps=2, height=32, width=32, output_type="latent")
    a = tiny_pipe(generator=torch.Generator().manual_seed(0), **kwargs).images
    b = loaded(generator=torch.Generator().manual_seed(0), **kwargs).images
    assert (a - b).abs().max().item() <= 1e-5  # reloaded weights: same values, summation order may differ
    unet = load_unet(str(tmp_path / "sdxl"))
    assert unet.config.block_out_channels == tiny_pipe.unet.config.block_out_channels


def test_bad_model_paths_give_clear_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_pipeline(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="model_index.json"):
        load_pipeline(str(tmp_path / "empty"))
    sd15 = tmp_path / "sd15"
    sd15.mkdir()
    (sd15 / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(ModelLoadError, match="expected an SDXL pipeline"):
        load_unet(str(sd15))
