"""Image-caption data for gate training: COCO captions, a JSONL manifest, or a folder of images + .txt.

Samples are resized (shortest side to the resolution) and cropped to a square, and the SDXL
micro-conditioning is recorded per sample: ``original_size`` (h, w), ``crop_top_left`` (top, left) and
``target_size``. Bad samples (missing or corrupt image, empty caption, unreadable manifest row) are skipped
and counted with a warning, or raise :class:`BadInputError` when ``strict``.

Order is deterministic and resumable: :class:`EpochBatches` draws a fresh permutation per epoch from
(seed, epoch), splits every global batch over the processes, and can start at any (epoch, batch); the crop
and flip of a sample are drawn from (seed, epoch, index), so they do not depend on workers or on resuming.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import BackendUnavailableError, BadInputError, ConfigError
from ..spec import time_ids
from ..world import Scene, token_targets
from .recipe import DataSection
from .synthetic import write_synthetic_dataset

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass(frozen=True)
class Record:
    image: Path
    caption: str
    scene: dict | None = None  # the world scene drawn in the image (ground truth), where the data carries one


class SkipCounter(Counter):
    """reason -> count of skipped samples; ``strict`` turns the first one into an error."""

    def __init__(self, strict: bool = False):
        super().__init__()
        self.strict = strict

    def skip(self, reason: str, where: str) -> None:
        if self.strict:
            raise BadInputError(f"bad training sample ({reason}): {where}; fix or remove it, or run without --strict")
        self[reason] += 1
        if self[reason] <= 3:
            log.warning("skipping training sample (%s): %s", reason, where)

    def describe(self) -> str:
        return ", ".join(f"{count} {reason}" for reason, count in sorted(self.items())) or "none"


# ----------------------------------------------------------------------------------------------- records


def _scene_beside(image: Path, skipped: SkipCounter) -> dict | None:
    path = image.with_suffix(".json")
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, json.JSONDecodeError) as exc:
        skipped.skip("unreadable scene", f"{path} ({exc})")
        return None


def _folder_records(root: Path, skipped: SkipCounter, scenes: bool = False) -> list[Record]:
    if not root.is_dir():
        raise BadInputError(f"data.path {root} is not a folder; data.format='folder' expects images with .txt captions")
    records = []
    for image in sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        text = image.with_suffix(".txt")
        caption = text.read_text(encoding="utf-8", errors="replace").strip() if text.is_file() else ""
        if not caption:
            skipped.skip("empty caption", str(text))
            continue
        records.append(Record(image, caption, _scene_beside(image, skipped) if scenes else None))
    return records


def _jsonl_records(manifest: Path, skipped: SkipCounter) -> list[Record]:
    if not manifest.is_file():
        raise BadInputError(f"manifest {manifest} does not exist; data.format='jsonl' expects a .jsonl file")
    records = []
    for number, line in enumerate(manifest.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            image, caption = row["image"], row["caption"]
            if not isinstance(image, str) or not isinstance(caption, str):
                raise TypeError("image and caption must be strings")
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            skipped.skip("unreadable manifest row", f"{manifest}:{number} ({exc})")
            continue
        if not caption.strip():
            skipped.skip("empty caption", f"{manifest}:{number}")
            continue
        scene = row.get("scene")
        records.append(Record(manifest.parent / image, caption.strip(), scene if isinstance(scene, dict) else None))
    return records


def _coco_records(annotations: Path, images: Path, skipped: SkipCounter) -> list[Record]:
    if not annotations.is_file():
        raise BadInputError(f"COCO captions file {annotations} does not exist (expected captions_train2014.json)")
    try:
        payload = json.loads(annotations.read_text(encoding="utf-8"))
        files = {int(item["id"]): item["file_name"] for item in payload["images"]}
        rows = payload["annotations"]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BadInputError(f"{annotations} is not a COCO captions file ({exc}); expected 'images' and 'annotations'") from exc
    if not images.is_dir():
        raise BadInputError(f"COCO image folder {images} does not exist; set data.images to the train2014 folder")
    records = []
    for row in rows:
        try:
            name, caption = files[int(row["image_id"])], str(row["caption"]).strip()
        except (KeyError, TypeError, ValueError) as exc:
            skipped.skip("unreadable manifest row", f"{annotations}: annotation {row!r:.80} ({exc})")
            continue
        if not caption:
            skipped.skip("empty caption", f"{annotations}: image {name}")
            continue
        records.append(Record(images / name, caption))
    return records


def noun_phrase_counter(model_name: str = "en_core_web_sm"):
    """A function captions -> noun-phrase counts, from spaCy (an optional dependency)."""
    try:
        import spacy
    except ImportError:
        raise BackendUnavailableError(
            "data.min_noun_phrases needs spaCy, which is not installed: pip install 'maskattn-trt[nlp]' and an "
            f"English pipeline ({model_name}), or set data.min_noun_phrases=0 to keep every caption"
        ) from None
    try:
        nlp = spacy.load(model_name, disable=["ner", "lemmatizer"])
    except OSError as exc:
        raise BackendUnavailableError(
            f"spaCy is installed but its pipeline {model_name!r} is not ({exc}); install it "
            "(python -m spacy download en_core_web_sm) or set data.spacy_model / data.min_noun_phrases=0"
        ) from None
    return lambda captions: [len(list(doc.noun_chunks)) for doc in nlp.pipe(captions, batch_size=256)]


def read_records(section: DataSection, synthetic_root: Path | None = None,
                 scenes: bool = False) -> tuple[list[Record], SkipCounter]:
    """Every usable (image, caption) record of the data section, and what was skipped while indexing.

    ``scenes``: also read each folder image's scene (``NNNNN.json`` beside it; jsonl rows carry theirs)."""
    skipped = SkipCounter(section.strict)
    if section.format == "synthetic":
        if synthetic_root is None:
            raise ConfigError("data.format='synthetic' needs a folder to write the generated images to")
        root = synthetic_root
        if not (root / f"{section.synthetic_samples - 1:05d}.txt").is_file():
            write_synthetic_dataset(root, section.synthetic_samples, section.resolution)
        records = _folder_records(root, skipped, scenes)[: section.synthetic_samples]
    elif section.format == "folder":
        records = _folder_records(Path(section.path), skipped, scenes)
    elif section.format == "jsonl":
        records = _jsonl_records(Path(section.path), skipped)
    else:
        path = Path(section.path)
        images = Path(section.images) if section.images else path.parent.parent / "train2014"
        records = _coco_records(path, images, skipped)
    missing = [r for r in records if not r.image.is_file()]
    for record in missing:
        skipped.skip("missing image", str(record.image))
    records = [r for r in records if r.image.is_file()]
    if section.min_noun_phrases:
        counts = noun_phrase_counter(section.spacy_model)([r.caption for r in records])
        kept = [r for r, n in zip(records, counts, strict=True) if n >= section.min_noun_phrases]
        skipped[f"fewer than {section.min_noun_phrases} noun phrases"] += len(records) - len(kept)
        records = kept
    if not records:
        raise BadInputError(f"no usable training samples in {section.path or synthetic_root} (skipped: {skipped.describe()})")
    return records, skipped


# ----------------------------------------------------------------------------------------------- samples


def crop_square(image, resolution: int, center: bool, flip: bool, rng: random.Random):
    """Resize the shortest side to ``resolution`` and crop a square; returns (image, micro-conditioning)."""
    from PIL import Image

    width, height = image.size
    scale = resolution / min(width, height)
    new_w, new_h = max(resolution, round(width * scale)), max(resolution, round(height * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    if center:
        top, left = (new_h - resolution) // 2, (new_w - resolution) // 2
    else:
        top, left = rng.randint(0, new_h - resolution), rng.randint(0, new_w - resolution)
    image = image.crop((left, top, left + resolution, top + resolution))
    if flip and rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        left = new_w - left - resolution  # diffusers' SDXL training script records the mirrored crop
    ids = time_ids(resolution, resolution, crop=(top, left), original=(height, width))[0]
    return image, ids


def image_tensor(image) -> torch.Tensor:
    """PIL RGB -> [3, H, W] float in [-1, 1]."""
    data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return data.view(image.size[1], image.size[0], 3).permute(2, 0, 1).float().div(127.5).sub(1.0)


class SceneTargets:
    """The mask-supervision targets of a sample (``train.mask_weight``), from its scene.

    ``token_masks`` [T, side, side]: each colour / shape word's tokens carry their object's coverage of a
    ``side`` x ``side`` grid (the latent grid), every other token ones (open); ``object_tokens`` [T] bool: which
    tokens are colour / shape words. See :func:`maskattn_trt.world.token_targets`. Needs images drawn at the training resolution, uncropped.
    """

    def __init__(self, tokenizer, resolution: int, side: int, max_tokens: int = 77):
        if resolution % side:
            raise ConfigError(f"train.mask_weight: a {side}x{side} latent grid does not tile {resolution} px images")
        self.tokenizer, self.resolution, self.side, self.max_tokens = tokenizer, resolution, side, max_tokens

    def __call__(self, record: Record) -> dict[str, torch.Tensor]:
        if record.scene is None:
            raise BadInputError(f"{record.image} has no scene beside it (expected {record.image.with_suffix('.json').name}"
                                " or a 'scene' key in its manifest row); train.mask_weight needs synthetic world data, "
                                "or set train.mask_weight=0")
        try:
            scene = Scene.from_dict(record.scene)
        except BadInputError as exc:
            raise BadInputError(f"{record.image}: {exc}") from None
        if scene.size != self.resolution or scene.caption != record.caption:
            found = f"{scene.size} px, {scene.caption!r}"
            raise BadInputError(f"{record.image}: its scene ({found}) does not match the sample ({self.resolution} px, "
                                f"{record.caption!r}); train.mask_weight needs data.resolution = the scenes' size "
                                "and their own captions")
        try:
            masks, object_tokens = token_targets(scene, self.tokenizer, self.side, self.max_tokens)
        except ValueError as exc:
            raise BadInputError(f"{record.image}: {exc}; train.mask_weight needs captions of the world's grammar") from None
        return {"token_masks": torch.from_numpy(masks), "object_tokens": torch.from_numpy(object_tokens)}


class ImageCaptionDataset(torch.utils.data.Dataset):
    """Keys are (epoch, index); a bad image yields ``{"bad": reason}`` (skipped by :func:`collate`).

    ``targets``: a :class:`SceneTargets` that adds each sample's mask-supervision targets."""

    def __init__(self, records: list[Record], section: DataSection, seed: int = 0,
                 targets: SceneTargets | None = None):
        self.records = records
        self.section = section
        self.seed = seed
        self.targets = targets

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key):
        epoch, index = key
        record = self.records[index]
        rng = random.Random(hash((self.seed, epoch, index)))
        try:
            from PIL import Image, UnidentifiedImageError

            with Image.open(record.image) as raw:
                image = raw.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            if self.section.strict:
                raise BadInputError(f"bad training sample (corrupt image): {record.image} ({exc}); "
                                    "fix or remove it, or run without --strict") from exc
            return {"bad": "corrupt image", "where": str(record.image)}
        image, ids = crop_square(image, self.section.resolution, self.section.center_crop,
                                      self.section.random_flip, rng)
        item = {"pixel_values": image_tensor(image), "caption": record.caption, "time_ids": ids, "index": index}
        if self.targets is not None:
            item.update(self.targets(record))
        return item


def collate(items: list[dict]) -> dict:
    """Stack the good samples; report the bad ones as ``batch["bad"] = [(reason, where)]``."""
    bad = [(item["bad"], item["where"]) for item in items if "bad" in item]
    good = [item for item in items if "bad" not in item]
    batch: dict = {"bad": bad, "size": len(good)}
    if good:
        for key in good[0]:
            values = [item[key] for item in good]
            batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return batch


class EpochBatches(torch.utils.data.Sampler):
    """This process's share of every global batch, epoch after epoch, from position (epoch, batch).

    A global batch is ``batch_size * world_size`` consecutive entries of the epoch's permutation; process
    ``rank`` takes its ``rank``-th slice. Incomplete global batches at an epoch's end are dropped.
    """

    def __init__(self, size: int, batch_size: int, world_size: int = 1, rank: int = 0, seed: int = 0,
                 start: tuple[int, int] = (0, 0)):
        self.size, self.batch_size, self.world_size, self.rank, self.seed = size, batch_size, world_size, rank, seed
        self.batches_per_epoch = size // (batch_size * world_size)
        if self.batches_per_epoch == 0:
            raise BadInputError(
                f"only {size} usable samples, fewer than one global batch ({batch_size} x {world_size} processes); "
                "add data or lower train.batch_size"
            )
        self.start = start

    def __len__(self) -> int:  # endless; DataLoader only needs it for its own bookkeeping
        return 2**62

    def __iter__(self):
        epoch, batch = self.start
        while True:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 7919 + epoch))
            for b in range(batch, self.batches_per_epoch):
                first = (b * self.world_size + self.rank) * self.batch_size
                yield [(epoch, int(i)) for i in order[first : first + self.batch_size]]
            epoch, batch = epoch + 1, 0

    def position_after(self, epoch: int, batch: int) -> tuple[int, int]:
        batch += 1
        return (epoch + 1, 0) if batch >= self.batches_per_epoch else (epoch, batch)
