"""Data: the three on-disk formats, micro-conditioning, bad samples, resumable order, the caption filter."""

import json
import logging

import pytest
import torch
from PIL import Image

from maskattn_trt.errors import BackendUnavailableError, BadInputError
from maskattn_trt.train.data import EpochBatches, ImageCaptionDataset, collate, read_records
from maskattn_trt.train.recipe import DataSection
from maskattn_trt.train.synthetic import write_synthetic_dataset

from ..conftest import has_module
from .helpers import tiny_recipe


@pytest.mark.parametrize("layout", ["folder", "jsonl", "coco"])
def test_every_format_reads_the_same_samples(tmp_path, layout):
    path = write_synthetic_dataset(tmp_path / layout, samples=6, size=32, seed=3, layout=layout)
    records, skipped = read_records(DataSection(format=layout, path=str(path), resolution=32))
    assert len(records) == 6 and not skipped
    assert all(r.caption.startswith(("a ", "an ")) and r.image.is_file() for r in records)
    first = Image.open(records[0].image)
    assert first.size == (32, 32)


def test_resize_crop_records_sdxl_micro_conditioning(tmp_path):
    Image.new("RGB", (96, 48), (200, 10, 10)).save(tmp_path / "wide.png")
    (tmp_path / "wide.txt").write_text("a red box and a wide sky")
    section = DataSection(format="folder", path=str(tmp_path), resolution=32, center_crop=False)
    records, _ = read_records(section)
    item = ImageCaptionDataset(records, section, seed=0)[(0, 0)]
    assert item["pixel_values"].shape == (3, 32, 32)
    assert -1.0 <= item["pixel_values"].min() and item["pixel_values"].max() <= 1.0
    height, width, top, left, th, tw = item["time_ids"].tolist()
    assert (height, width, top, th, tw) == (48, 96, 0, 32, 32) and 0 <= left <= 64 - 32
    centre = ImageCaptionDataset(records, DataSection(format="folder", path=str(tmp_path), resolution=32,
                                                      center_crop=True))[(0, 0)]
    assert centre["time_ids"].tolist() == [48, 96, 0, 16, 32, 32]
    # the random crop is a function of (seed, epoch, index): identical when drawn again
    again = ImageCaptionDataset(records, section, seed=0)[(0, 0)]
    assert torch.equal(again["time_ids"], item["time_ids"])


def _broken_manifest(tmp_path):
    write_synthetic_dataset(tmp_path, samples=5, size=32, layout="jsonl")
    (tmp_path / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n not really an image")
    manifest = tmp_path / "manifest.jsonl"
    rows = manifest.read_text().splitlines()
    rows[2] = json.dumps({"image": "00002.png", "caption": "   "})
    rows[3] = '{"image": "00003.png", "caption": '  # truncated row
    rows.append(json.dumps({"image": "gone.png", "caption": "a missing picture"}))
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def test_bad_samples_are_skipped_and_counted_with_a_warning(tmp_path, caplog):
    manifest = _broken_manifest(tmp_path)
    section = DataSection(format="jsonl", path=str(manifest), resolution=32)
    with caplog.at_level(logging.WARNING):
        records, skipped = read_records(section)
    assert dict(skipped) == {"empty caption": 1, "unreadable manifest row": 1, "missing image": 1}
    assert "skipping training sample" in caplog.text
    dataset = ImageCaptionDataset(records, section)
    batch = collate([dataset[(0, i)] for i in range(len(records))])
    assert batch["size"] == 2 and [reason for reason, _ in batch["bad"]] == ["corrupt image"]
    # through the trainer: counted in the summary, training still runs
    recipe = tiny_recipe(tmp_path / "run", "data.format='jsonl'", f'data.path="{manifest}"', "train.steps=3",
                         "train.batch_size=1", "train.effective_batch=1", "checkpoint.every=0")
    from maskattn_trt.train.loop import train

    result = train(recipe)
    assert result.finished
    assert result.skipped["corrupt image"] >= 1 and result.skipped["missing image"] == 1
    assert "corrupt image" in result.summary()


def test_strict_mode_stops_at_the_first_bad_sample(tmp_path):
    manifest = _broken_manifest(tmp_path)
    with pytest.raises(BadInputError, match=r"bad training sample \(empty caption\).*without --strict"):
        read_records(DataSection(format="jsonl", path=str(manifest), resolution=32, strict=True))
    section = DataSection(format="jsonl", path=str(manifest), resolution=32, strict=True)
    records = [r for r in read_records(DataSection(format="jsonl", path=str(manifest), resolution=32))[0]]
    with pytest.raises(BadInputError, match="corrupt image"):
        ImageCaptionDataset(records, section)[(0, 1)]


def test_epoch_batches_split_global_batches_and_resume_anywhere():
    full = EpochBatches(10, batch_size=2, world_size=2, rank=0, seed=1)
    other = EpochBatches(10, batch_size=2, world_size=2, rank=1, seed=1)
    a, b = iter(full), iter(other)
    epoch0 = [next(a) for _ in range(2)] + [next(b) for _ in range(2)]
    indices = [i for batch in epoch0 for _, i in batch]
    assert len(set(indices)) == 8 and all(e == 0 for batch in epoch0 for e, _ in batch)  # disjoint, 2 dropped
    assert next(a)[0][0] == 1  # then epoch 1
    late = iter(EpochBatches(10, batch_size=2, world_size=2, rank=0, seed=1, start=(1, 1)))
    reference = iter(EpochBatches(10, batch_size=2, world_size=2, rank=0, seed=1))
    for _ in range(3):
        next(reference)
    assert next(late) == next(reference)
    assert full.position_after(0, 1) == (1, 0) and full.position_after(0, 0) == (0, 1)
    with pytest.raises(BadInputError, match="fewer than one global batch"):
        EpochBatches(3, batch_size=2, world_size=2)


def test_empty_or_missing_datasets_fail_clearly(tmp_path):
    with pytest.raises(BadInputError, match="is not a folder"):
        read_records(DataSection(format="folder", path=str(tmp_path / "nope")))
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(BadInputError, match="no usable training samples"):
        read_records(DataSection(format="folder", path=str(tmp_path)))
    (tmp_path / "captions.json").write_text("{}")
    with pytest.raises(BadInputError, match="not a COCO captions file"):
        read_records(DataSection(format="coco", path=str(tmp_path / "captions.json")))


@pytest.mark.skipif(has_module("spacy"), reason="spaCy is installed: the missing-dependency message cannot show")
def test_noun_phrase_filter_without_spacy_says_what_to_install(tmp_path):
    path = write_synthetic_dataset(tmp_path, samples=2, size=32)
    with pytest.raises(BackendUnavailableError, match=r"needs spaCy.*maskattn-trt\[nlp\].*min_noun_phrases=0"):
        read_records(DataSection(format="folder", path=str(path), min_noun_phrases=2))
