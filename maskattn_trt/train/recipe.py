"""Training recipes: frozen dataclasses parsed from TOML (unknown keys rejected by name) plus overrides.

A recipe has one section per concern::

    [model]      which SDXL, precision, gradient checkpointing
    [gates]      the GateConfig fields (stage, placement, training_form, ...)
    [data]       dataset format and location, resolution, filtering, optional latent/text cache
    [optim]      AdamW, learning-rate schedule, gradient clipping
    [train]      steps, batch sizes, seed, loss target
    [checkpoint] how often, how many to keep
    [log]        progress bar, JSONL metrics, TensorBoard

Overrides are ``section.key=value`` strings whose value is read as TOML (``optim.lr=3e-4``,
``data.format="jsonl"``, ``train.steps=20``); a bare word that is not valid TOML is taken as a string.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import GateConfig
from ..errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

DATA_FORMATS = ("synthetic", "folder", "jsonl", "coco")
PRECISIONS = ("fp32", "bf16", "fp16")
PREDICTION_TYPES = ("auto", "epsilon", "v_prediction")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


_TYPE_NAMES = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
               "tuple[float, float]": "two numbers, e.g. [0.9, 0.999]"}


def _typed(where: str, annotation: str, value: Any) -> Any:
    """``value`` checked against a field's annotation (TOML types): the key and expected type on a mismatch;
    numbers must be finite. Fields of other types are checked by their section."""
    expected = _TYPE_NAMES.get(annotation)
    if expected is None:
        return value
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = {"int": isinstance(value, int) and not isinstance(value, bool), "float": number,
          "str": isinstance(value, str), "bool": isinstance(value, bool),
          "tuple[float, float]": isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)}[annotation]
    if not ok:
        raise ConfigError(f"{where} must be {expected}; got {value!r} ({type(value).__name__})")
    values = value if isinstance(value, (list, tuple)) else [value]
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        raise ConfigError(f"{where} must be a finite number; got {value!r}")
    return float(value) if annotation == "float" else value


@dataclass(frozen=True)
class ModelSection:
    model: str = "tiny"  # 'tiny' (shipped, trained), 'tiny-random' or a local diffusers SDXL folder
    precision: str = "fp32"  # frozen backbone dtype; gate heads always train in fp32
    gradient_checkpointing: bool = False
    device: str = "auto"  # auto = cuda:<local rank> when CUDA is available, else cpu

    def __post_init__(self):
        _check(self.precision in PRECISIONS, f"model.precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}")


@dataclass(frozen=True)
class DataSection:
    format: str = "synthetic"
    path: str = ""  # folder, manifest .jsonl, or captions_train2014.json
    images: str = ""  # COCO image folder (default: <path's folder>/train2014)
    resolution: int = 64  # pixels, square
    center_crop: bool = False  # False: random crop (recorded as crop_coords_top_left)
    random_flip: bool = False
    min_noun_phrases: int = 0  # 0 = no caption filter; the official recipe uses 2 (needs spaCy)
    spacy_model: str = "en_core_web_sm"
    strict: bool = False  # error on the first bad sample instead of skipping it
    cache_dir: str = ""  # VAE latents + text embeddings as safetensors shards ('' = no cache)
    cache_shard_size: int = 1024
    num_workers: int = 0
    synthetic_samples: int = 64  # format = 'synthetic': images generated under <out_dir>/synthetic

    def __post_init__(self):
        _check(self.format in DATA_FORMATS, f"data.format must be one of {', '.join(DATA_FORMATS)}; got {self.format!r}")
        _check(self.format == "synthetic" or bool(self.path), f"data.path is required for data.format={self.format!r}")
        _check(isinstance(self.resolution, int) and self.resolution >= 16 and self.resolution % 16 == 0,
               f"data.resolution must be a multiple of 16 pixels (>= 16); got {self.resolution!r}")
        _check(self.min_noun_phrases >= 0, f"data.min_noun_phrases must be >= 0; got {self.min_noun_phrases}")
        _check(self.cache_shard_size > 0, "data.cache_shard_size must be positive")
        _check(self.num_workers >= 0, "data.num_workers must be >= 0")
        _check(self.synthetic_samples > 0, "data.synthetic_samples must be positive")


@dataclass(frozen=True)
class OptimSection:
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 1000
    min_lr_ratio: float = 0.0  # cosine decays to lr * min_lr_ratio at the last step
    grad_clip: float = 1.0  # 0 = no clipping

    def __post_init__(self):
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        _check(0 < self.lr < math.inf, f"optim.lr must be a positive finite number; got {self.lr}")
        _check(self.weight_decay >= 0, "optim.weight_decay must be >= 0")
        _check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), f"optim.betas must be two values in [0, 1); got {self.betas}")
        _check(self.warmup_steps >= 0, "optim.warmup_steps must be >= 0")
        _check(0.0 <= self.min_lr_ratio <= 1.0, "optim.min_lr_ratio must lie in [0, 1]")
        _check(self.grad_clip >= 0, "optim.grad_clip must be >= 0 (0 disables clipping)")


@dataclass(frozen=True)
class TrainSection:
    steps: int = 100
    batch_size: int = 2  # per process and micro-step
    effective_batch: int = 0  # samples per optimizer step over all processes; 0 = batch_size * processes
    seed: int = 0
    prediction_type: str = "auto"  # auto = the scheduler's prediction_type
    min_snr_gamma: float = 0.0  # 0 = plain MSE; 5 is the usual min-SNR weighting
    init_gates: str = ""  # start from these gate weights (e.g. the 512 px run's) instead of fresh heads
    init_logit_bias: float = 0.0  # fresh heads' logit bias: 0 = the official start (about half the gates
    # closed at random); > 0 starts them mostly open, i.e. from the frozen model's own behaviour
    mask_weight: float = 0.0  # 0 = the paper's objective (diffusion loss only); > 0 adds weight x a mask loss:
    # binary cross-entropy of each colour / shape word's gate logits against its object's mask (needs scenes
    # with ground truth: synthetic world data, see train/README.md)
    out_dir: str = "runs/train"

    def __post_init__(self):
        _check(self.steps > 0, f"train.steps must be positive; got {self.steps}")
        _check(self.batch_size > 0, f"train.batch_size must be positive; got {self.batch_size}")
        _check(self.effective_batch >= 0, "train.effective_batch must be >= 0")
        _check(self.prediction_type in PREDICTION_TYPES,
               f"train.prediction_type must be one of {', '.join(PREDICTION_TYPES)}; got {self.prediction_type!r}")
        _check(self.min_snr_gamma >= 0, "train.min_snr_gamma must be >= 0")
        _check(0 <= self.mask_weight < math.inf, f"train.mask_weight must be >= 0 and finite; got {self.mask_weight}")

    def grad_accum(self, world_size: int) -> int:
        """Micro-steps per optimizer step so that batch_size * accum * world_size == effective_batch."""
        if not self.effective_batch:
            return 1
        per_step = self.batch_size * world_size
        if self.effective_batch % per_step:
            raise ConfigError(
                f"train.effective_batch={self.effective_batch} is not a multiple of batch_size x processes "
                f"= {self.batch_size} x {world_size}; change train.batch_size or train.effective_batch"
            )
        return self.effective_batch // per_step


@dataclass(frozen=True)
class CheckpointSection:
    every: int = 1000  # steps; 0 = only at the end
    keep: int = 3

    def __post_init__(self):
        _check(self.every >= 0, "checkpoint.every must be >= 0")
        _check(self.keep >= 1, "checkpoint.keep must be >= 1")


@dataclass(frozen=True)
class LogSection:
    every: int = 10  # steps between metric records
    progress: bool = True
    tensorboard: bool = False

    def __post_init__(self):
        _check(self.every >= 1, "log.every must be >= 1")


@dataclass(frozen=True)
class Recipe:
    model: ModelSection = field(default_factory=ModelSection)
    gates: GateConfig = field(default_factory=GateConfig)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    log: LogSection = field(default_factory=LogSection)

    def __post_init__(self):
        if self.train.mask_weight > 0:
            data = self.data
            _check(data.format in ("synthetic", "folder", "jsonl"),
                   f"train.mask_weight needs each image's scene (ground truth), which data.format={data.format!r} "
                   "does not carry; use synthetic world data (format synthetic, or a folder / jsonl written by "
                   "write_synthetic_dataset) or set train.mask_weight=0")
            _check(not data.cache_dir, "train.mask_weight reads each sample's scene, which the latent cache does "
                   "not keep; set data.cache_dir='' or train.mask_weight=0")
            _check(not data.random_flip and data.center_crop,
                   "train.mask_weight needs images as the scenes drew them (their masks are not cropped or "
                   "flipped): set data.center_crop=true and data.random_flip=false")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _section_dict(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "recipe") -> Recipe:
        sections = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(sections))
        if unknown:
            raise ConfigError(f"{source}: unknown section(s) {', '.join(unknown)}; expected {', '.join(sections)}")
        built = {}
        for name, value in values.items():
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: [{name}] must be a table of keys; got {type(value).__name__}")
            section_cls = _SECTION_TYPES[name]
            known = {f.name for f in dataclasses.fields(section_cls)}
            bad = sorted(set(value) - known)
            if bad:
                raise ConfigError(
                    f"{source}: unknown key(s) {', '.join(f'{name}.{k}' for k in bad)}; "
                    f"[{name}] accepts {', '.join(sorted(known))}"
                )
            fields = {f.name: f.type for f in dataclasses.fields(section_cls)}
            value = {k: _typed(f"{source}: {name}.{k}", str(fields[k]), v) for k, v in value.items()}
            try:
                built[name] = section_cls(**value)
            except TypeError as exc:
                raise ConfigError(f"{source}: bad value in [{name}]: {exc}") from exc
        return cls(**built)

    def with_overrides(self, overrides: list[str] | tuple[str, ...]) -> Recipe:
        values = self.to_dict()
        for item in overrides:
            key, value = parse_override(item)
            section, _, name = key.partition(".")
            values.setdefault(section, {})[name] = value
        return Recipe.from_dict(values, source="recipe overrides")

    def summary(self) -> str:
        return (f"model={self.model.model} precision={self.model.precision} data={self.data.format} "
                f"{self.data.resolution}px steps={self.train.steps} lr={self.optim.lr:g} "
                f"form={self.gates.training_form}")


_SECTION_TYPES = {"model": ModelSection, "gates": GateConfig, "data": DataSection, "optim": OptimSection,
                  "train": TrainSection, "checkpoint": CheckpointSection, "log": LogSection}


def _section_dict(section) -> dict[str, Any]:
    if isinstance(section, GateConfig):
        return section.to_dict()
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(section).items()}


def parse_override(item: str) -> tuple[str, Any]:
    """``section.key=value`` -> (key, value); the value is read as TOML, else kept as a string."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or "." not in key or not key.split(".", 1)[1]:
        raise ConfigError(f"override {item!r} must look like section.key=value (e.g. optim.lr=3e-4)")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key, value


def load_recipe(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a TOML recipe (None = all defaults) and apply ``section.key=value`` overrides."""
    if path is None:
        return Recipe().with_overrides(overrides)
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe {path} does not exist; pass a TOML file such as train/tiny_cpu.toml")
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"recipe {path} is not valid TOML: {exc}") from exc
    return Recipe.from_dict(values, source=f"recipe {path}").with_overrides(overrides)
