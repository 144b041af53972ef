"""The scenes to evaluate: a named prompt set of the synthetic world, or a JSON / JSONL file of scenes."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import BadInputError
from ..world import PROMPT_SETS, Scene, prompt_set


def load_scenes(prompts: str, count: int, seed: int, size: int) -> list[Scene]:
    """``prompts``: a prompt-set name (``heldout``, ``two``, ``single``: ``count`` scenes of ``size`` px drawn
    with ``seed``) or a file: a JSON list of ``Scene.to_dict()`` objects (or ``{"scenes": [...]}``), or JSON
    lines, one scene per line (``count`` then keeps the first ``count``)."""
    if prompts in PROMPT_SETS:
        return prompt_set(prompts, count=count, seed=seed, size=size)
    path = Path(prompts)
    if not path.is_file():
        raise BadInputError(f"--prompts must be one of {', '.join(PROMPT_SETS)} or a JSON / JSONL file of scenes; "
                            f"found neither a set nor a file named {prompts!r}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"--prompts {path}: cannot read it as UTF-8 text ({exc}); pass a JSON / JSONL file "
                            "of scenes") from None
    rows = _rows(text, path)
    if not rows:
        raise BadInputError(f"--prompts {path} holds no scene; write Scene.to_dict() objects, one per line")
    scenes = []
    for k, row in enumerate(rows[:count], 1):
        if not isinstance(row, dict):
            raise BadInputError(f"--prompts {path}: scene {k} is a {type(row).__name__}, expected a JSON object "
                                "with the keys of Scene.to_dict()")
        try:
            scenes.append(Scene.from_dict(row))
        except BadInputError as exc:
            raise BadInputError(f"--prompts {path}: scene {k}: {exc}") from None
    return scenes


def _rows(text: str, path: Path) -> list:
    stripped = text.strip()
    if not stripped:
        return []
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError:
        data = None
    else:
        if isinstance(data, dict) and isinstance(data.get("scenes"), list):
            return data["scenes"]
        if isinstance(data, list):
            return data
        if isinstance(data, dict):
            return [data]
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise BadInputError(f"--prompts {path}:{n}: not valid JSON ({exc.msg}); write one scene object per line "
                                "(Scene.to_dict())") from None
    return rows
