"""Optional on-disk cache of VAE latents and text embeddings (safetensors shards).

Long runs spend much of a step in the frozen encoders; with ``data.cache_dir`` set, one pass encodes
every sample (epoch 0's crop and flip, which the cache then keeps for every epoch) and training reads
``shard-NNNNN.safetensors`` rows by memory-mapped slices. ``index.json`` records a signature of what the
cache was built from (samples, resolution, crop/flip, model, seed, precision); a cache whose signature
differs is rebuilt, never silently reused. The folder is built under a temporary name and renamed whole.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import BadInputError
from ..utils.io import atomic_dir, claim_output_dir, sha256_json
from ..utils.progress import progress_bar
from .data import ImageCaptionDataset, Record, collate
from .objective import encode_captions, encode_images
from .recipe import DataSection

INDEX = "index.json"
KEYS = ("latent_mean", "latent_std", "prompt_embeds", "pooled", "time_ids")


def cache_signature(records: list[Record], section: DataSection, seed: int, pipe) -> str:
    text_dtype = str(next(pipe.text_encoder.parameters()).dtype)
    return sha256_json({
        "samples": [(str(r.image), r.caption) for r in records],
        "resolution": section.resolution, "center_crop": section.center_crop, "random_flip": section.random_flip,
        "seed": seed, "vae": dict(pipe.vae.config), "text_dtype": text_dtype,
        "text_encoders": [pipe.text_encoder.config.to_dict(), pipe.text_encoder_2.config.to_dict()],
        "weights": [float(p.detach().float().flatten()[:64].sum()) for p in
                    (next(pipe.vae.parameters()), next(pipe.text_encoder.parameters()),
                     next(pipe.text_encoder_2.parameters()))],
    })


def cache_is_current(cache_dir: str | Path, signature: str) -> bool:
    index = Path(cache_dir) / INDEX
    if not index.is_file():
        return False
    try:
        return json.loads(index.read_text()).get("signature") == signature
    except json.JSONDecodeError:
        return False


def ensure_cache(pipe, records: list[Record], section: DataSection, seed: int, device, batch_size: int = 8,
                 progress: bool = True) -> Path:
    """Build ``section.cache_dir`` unless it already holds a cache of exactly these samples and encoders (a
    stale cache of ours is replaced; a non-empty folder that is not a cache is refused)."""
    cache_dir = Path(section.cache_dir)
    signature = cache_signature(records, section, seed, pipe)
    if cache_is_current(cache_dir, signature):
        return cache_dir
    claim_output_dir(cache_dir, ours=lambda folder: (folder / INDEX).is_file(),
                     what=f"a latent cache (no {INDEX})", option="data.cache_dir")
    dataset = ImageCaptionDataset(records, section, seed)
    shards, buffer, count = [], {key: [] for key in KEYS}, 0
    with atomic_dir(cache_dir) as tmp:

        def flush():
            nonlocal buffer
            if not buffer["time_ids"]:
                return
            name = f"shard-{len(shards):05d}.safetensors"
            tensors = {key: torch.cat(values).contiguous() for key, values in buffer.items()}
            save_file(tensors, str(tmp / name))
            shards.append({"file": name, "rows": int(tensors["time_ids"].shape[0])})
            buffer = {key: [] for key in KEYS}

        bar = progress_bar(progress, total=len(dataset), desc="cache", unit="sample")
        for first in range(0, len(dataset), batch_size):
            batch = collate([dataset[(0, i)] for i in range(first, min(first + batch_size, len(dataset)))])
            bar.update(batch["size"] + len(batch["bad"]))
            if not batch["size"]:
                continue
            mean, std = encode_images(pipe.vae, batch["pixel_values"])
            prompt_embeds, pooled = encode_captions(pipe, batch["caption"], device)
            for key, value in zip(KEYS, (mean, std, prompt_embeds, pooled, batch["time_ids"]), strict=True):
                buffer[key].append(value.detach().cpu())
            count += batch["size"]
            if len(buffer["time_ids"]) * batch_size >= section.cache_shard_size:
                flush()
        flush()
        bar.close()
        if not count:
            raise BadInputError(f"no sample could be encoded into the cache {cache_dir}")
        (tmp / INDEX).write_text(json.dumps({"signature": signature, "samples": count, "shards": shards}, indent=2))
    return cache_dir


class CachedDataset(torch.utils.data.Dataset):
    """Rows of a cache built by :func:`ensure_cache`; keys are (epoch, index) like ImageCaptionDataset."""

    def __init__(self, cache_dir: str | Path):
        self.root = Path(cache_dir)
        index = self.root / INDEX
        if not index.is_file():
            raise BadInputError(f"{self.root} is not a latent cache (no {INDEX}); build it by training with data.cache_dir")
        meta = json.loads(index.read_text())
        self.rows = [(shard["file"], row) for shard in meta["shards"] for row in range(shard["rows"])]
        self._handles: dict[str, object] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self):  # file handles do not cross into DataLoader workers
        return {**self.__dict__, "_handles": {}}

    def __getitem__(self, key):
        _, index = key
        file, row = self.rows[index]
        handle = self._handles.get(file)
        if handle is None:
            handle = self._handles[file] = safe_open(str(self.root / file), framework="pt")
        item = {name: handle.get_slice(name)[row : row + 1][0] for name in KEYS}
        item["index"] = index
        return item
