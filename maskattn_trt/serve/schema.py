"""The HTTP JSON API of ``maskattn-trt serve``: request validation and error bodies.

A request body is a JSON object; every field is checked before any work and a bad one is answered with a 4xx
whose JSON names the field, what was expected and what was found. Limits that come from the loaded model
(sizes inside the runner's profile, on its latent grid) arrive as a :class:`Limits` built by the replica.
Pure Python: nothing here needs ray.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..errors import BadInputError

MAX_BODY_BYTES = 64 * 1024
MAX_PROMPT_CHARS = 2000  # CLIP reads 77 tokens; longer prompts are cut (the cut words come back in metadata)
MAX_SEED = 2**63 - 1

FIELDS = ("prompt", "negative_prompt", "steps", "guidance", "scheduler", "seed", "width", "height", "images")


class RequestError(BadInputError):
    """A request the server refuses: HTTP ``status`` and a JSON body naming field, expected, found."""

    def __init__(self, field: str | None, expected: str, found, status: int = 422, kind: str = "invalid_field",
                 described: bool = False):
        """``found``: the value received (shown as JSON with its type), or a description when ``described``."""
        self.field, self.expected, self.status, self.kind = field, expected, status, kind
        self.found = str(found) if described else _show(found)
        where = f"field {field!r}" if field else "request"
        super().__init__(f"{where}: expected {expected}; found {self.found}")

    def body(self) -> dict:
        return {"error": {"type": self.kind, "field": self.field, "expected": self.expected, "found": self.found,
                          "message": str(self)}}


def _show(value) -> str:
    text = json.dumps(value) if not isinstance(value, float) or value == value else "NaN"
    kind = "boolean" if isinstance(value, bool) else type(value).__name__
    return f"{text[:80]}{'...' if len(text) > 80 else ''} ({kind})"


@dataclass(frozen=True)
class Limits:
    """What one replica accepts (sizes in pixels)."""

    min_side: int = 8
    max_side: int = 2048
    multiple: int = 8  # the profile's grid: vae_scale * latent multiple, and always a multiple of 8
    default_side: int = 1024
    max_steps: int = 150
    max_images: int = 4
    max_prompt_chars: int = MAX_PROMPT_CHARS
    max_body_bytes: int = MAX_BODY_BYTES
    schedulers: tuple[str, ...] = ("euler",)  # the sampler's table, filled in by the replica


@dataclass(frozen=True)
class GenerateParams:
    """One validated request: ``images`` images of ``prompt`` with seeds ``seed .. seed + images - 1``."""

    prompt: str
    negative_prompt: str | None = None
    steps: int = 30
    guidance: float = 5.0
    scheduler: str = "euler"
    seed: int = 0
    width: int = 1024
    height: int = 1024
    images: int = 1

    @property
    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.images)]


def _integer(data: dict, name: str, default: int, lo: int, hi: int, what: str | None = None) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(name, f"an integer {what or f'{lo}..{hi}'}", value)
    if not lo <= value <= hi:
        raise RequestError(name, f"an integer {what or f'{lo}..{hi}'}", value)
    return value


def _text(data: dict, name: str, limit: int, required: bool) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise RequestError(name, "text (a JSON string)" + ("" if required else " or null"), value)
    if required and not value.strip():
        raise RequestError(name, "non-empty text", value)
    if len(value) > limit:
        raise RequestError(name, f"at most {limit} characters", f"{len(value)} characters", described=True)
    return value


def _side(data: dict, name: str, limits: Limits) -> int:
    value = data.get(name, limits.default_side)
    expected = f"a multiple of {limits.multiple} pixels in {limits.min_side}..{limits.max_side}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(name, expected, value)
    if value % 8 or value % limits.multiple or not limits.min_side <= value <= limits.max_side:
        raise RequestError(name, expected, value)
    return value


def decode_body(body: bytes, limits: Limits) -> dict:
    """Bytes -> JSON object (413 when too large, 400 when not a JSON object)."""
    if len(body) > limits.max_body_bytes:
        raise RequestError(None, f"a body of at most {limits.max_body_bytes} bytes", f"{len(body)} bytes", 413,
                           "body_too_large", described=True)
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(None, "a UTF-8 JSON object", f"invalid JSON ({exc})", 400, "invalid_json",
                           described=True) from None
    if not isinstance(data, dict):
        raise RequestError(None, "a JSON object", data, 400, "invalid_json")
    return data


def parse_generate(data: dict, limits: Limits) -> GenerateParams:
    """A decoded body -> :class:`GenerateParams`, or :class:`RequestError` naming the first bad field."""
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise RequestError(unknown[0], f"one of the fields {', '.join(FIELDS)}", f"unknown field {unknown[0]!r}", described=True)
    prompt = _text(data, "prompt", limits.max_prompt_chars, required=True)
    negative = _text(data, "negative_prompt", limits.max_prompt_chars, required=False)
    steps = _integer(data, "steps", GenerateParams.steps, 1, limits.max_steps)
    guidance = data.get("guidance", GenerateParams.guidance)
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not 0 <= guidance <= 100:
        raise RequestError("guidance", "a number 0..100 (<= 1 disables classifier-free guidance)", guidance)
    scheduler = data.get("scheduler", GenerateParams.scheduler)
    if not isinstance(scheduler, str) or scheduler not in limits.schedulers:
        raise RequestError("scheduler", f"one of {', '.join(limits.schedulers)}", scheduler)
    seed = _integer(data, "seed", 0, 0, MAX_SEED, "0..2^63-1")
    width, height = _side(data, "width", limits), _side(data, "height", limits)
    images = _integer(data, "images", 1, 1, limits.max_images)
    if seed + images - 1 > MAX_SEED:
        raise RequestError("seed", f"seed + images - 1 <= {MAX_SEED}", seed)
    return GenerateParams(prompt, negative, steps, float(guidance), scheduler, seed, width, height, images)
