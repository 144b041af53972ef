"""Prompts for ``generate``: one ``--prompt`` or a ``--prompts`` file (one per line, or JSONL objects with
per-prompt ``seed`` / ``negative``), expanded into jobs with explicit seeds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInputError

_JSON_KEYS = {"prompt", "seed", "negative", "negative_prompt"}


@dataclass(frozen=True)
class Job:
    """One image to make."""

    index: int
    prompt: str
    negative: str | None
    seed: int


@dataclass(frozen=True)
class PromptEntry:
    prompt: str
    negative: str | None = None
    seed: int | None = None


def _entry_from_json(text: str, where: str) -> PromptEntry:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{where}: not valid JSON ({exc.msg}); write one JSON object per line, "
                            '{"prompt": "...", "seed": 1, "negative": "..."}') from None
    if not isinstance(data, dict):
        raise BadInputError(f"{where}: expected a JSON object with a 'prompt' key; got {type(data).__name__}")
    unknown = sorted(set(data) - _JSON_KEYS)
    if unknown:
        raise BadInputError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: prompt, seed, negative")
    prompt, seed = data.get("prompt"), data.get("seed")
    negative = data.get("negative", data.get("negative_prompt"))
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadInputError(f"{where}: 'prompt' must be non-empty text; got {prompt!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise BadInputError(f"{where}: 'seed' must be a non-negative integer; got {seed!r}")
    if negative is not None and not isinstance(negative, str):
        raise BadInputError(f"{where}: 'negative' must be text; got {negative!r}")
    return PromptEntry(prompt.strip(), negative, seed)


def read_prompts(path: str | Path) -> list[PromptEntry]:
    """Read a prompt file: plain lines (blank lines and ``#`` comments skipped) or JSONL objects."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"prompt file {path} does not exist; pass a text file with one prompt per line or "
                            "a .jsonl file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"prompt file {path} cannot be read as UTF-8 text ({exc})") from exc
    entries = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("{") or path.suffix == ".jsonl":
            entries.append(_entry_from_json(text, f"{path}:{number}"))
        else:
            entries.append(PromptEntry(text))
    if not entries:
        raise BadInputError(f"prompt file {path} holds no prompt (it is empty or only comments); "
                            "write one prompt per line")
    return entries


def build_jobs(entries: list[PromptEntry], seed: int = 0, negative: str | None = None,
               images_per_prompt: int = 1) -> list[Job]:
    """Prompt ``i`` without its own seed gets ``seed + i``; its image ``j`` uses that seed ``+ j``."""
    if images_per_prompt < 1:
        raise BadInputError(f"images per prompt must be >= 1; got {images_per_prompt}")
    if seed < 0:
        raise BadInputError(f"seed must be a non-negative integer; got {seed}")
    if not entries:
        raise BadInputError("no prompt given; pass --prompt TEXT or --prompts FILE")
    jobs = []
    for i, entry in enumerate(entries):
        if not entry.prompt.strip():
            raise BadInputError(f"prompt {i + 1} is empty; every prompt must be non-empty text")
        base = entry.seed if entry.seed is not None else seed + i
        neg = entry.negative if entry.negative is not None else negative
        for j in range(images_per_prompt):
            jobs.append(Job(len(jobs), entry.prompt, neg, base + j))
    return jobs


def batches(jobs: list[Job], size: int) -> list[list[Job]]:
    if size < 1:
        raise BadInputError(f"--batch must be >= 1; got {size}")
    return [jobs[i:i + size] for i in range(0, len(jobs), size)]
