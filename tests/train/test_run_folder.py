"""The run folder is never silently overwritten or resumed from the wrong place; Ctrl-C keeps the work done;
non-finite numbers stop training with a clear error (issue 10, items 6, 9 and 10)."""

from __future__ import annotations

import json

import pytest

from maskattn_trt.errors import BadInputError, ConfigError, NonFiniteError
from maskattn_trt.train import checkpoint as ckpt
from maskattn_trt.train.loop import train
from maskattn_trt.train.metrics import Callback
from maskattn_trt.train.objective import Objective
from maskattn_trt.train.recipe import load_recipe

from .helpers import TINY_RECIPE, tiny_recipe

FAST = ("train.steps=2", "checkpoint.every=2", "data.synthetic_samples=8", "train.effective_batch=0")


def test_existing_run_needs_resume_or_force(tmp_path):
    recipe = tiny_recipe(tmp_path, *FAST)
    train(recipe)
    with pytest.raises(ConfigError, match=r"already holds a training run .*--resume.*--force"):
        train(recipe)
    with pytest.raises(ConfigError, match="already at step 2"):  # finished: says so instead of NaN statistics
        train(recipe, resume=True)
    longer = tiny_recipe(tmp_path, *FAST, "train.steps=1")  # a new run with fewer steps must not meet step 2
    result = train(longer, force=True)
    assert result.start_step == 0 and [p.name for p in ckpt.checkpoint_dirs(tmp_path)] == ["step-00000001"]


def test_resume_on_empty_or_foreign_folder_says_so(tmp_path):
    with pytest.raises(ConfigError, match="holds no training run"):
        train(tiny_recipe(tmp_path / "new", *FAST), resume=True)
    assert not (tmp_path / "new").exists()  # nothing created
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(BadInputError, match="not empty and is not a training run"):
        train(tiny_recipe(foreign, *FAST))
    with pytest.raises(BadInputError, match="not empty and is not a training run"):
        train(tiny_recipe(foreign, *FAST), resume=True)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


class _CtrlC(Callback):
    def __init__(self, at: int):
        self.at = at

    def on_step(self, record):
        if record["step"] == self.at:
            raise KeyboardInterrupt


def test_ctrl_c_writes_a_checkpoint_that_resumes(tmp_path):
    recipe = tiny_recipe(tmp_path, "train.steps=4", "checkpoint.every=0", "data.synthetic_samples=8",
                         "train.effective_batch=0")
    with pytest.raises(KeyboardInterrupt):
        train(recipe, callbacks=[_CtrlC(at=3)])
    latest = ckpt.latest_checkpoint(tmp_path)
    assert latest is not None and latest.name == "step-00000003"
    assert ckpt.load_trainer_state(latest).step == 3
    resumed = train(recipe, resume=True)
    assert resumed.start_step == 3 and resumed.finished


def test_non_finite_loss_stops_with_a_clear_error(tmp_path, monkeypatch):
    real = Objective.loss
    monkeypatch.setattr(Objective, "loss", lambda self, *a, **k: real(self, *a, **k) * float("nan"))
    with pytest.raises(NonFiniteError, match="training loss is nan at step 1"):
        train(tiny_recipe(tmp_path, *FAST))
    assert not (tmp_path / "gates.safetensors").exists()


@pytest.mark.parametrize(("override", "message"), [
    ("optim.lr=inf", "optim.lr must be a finite number"),
    ("optim.lr=nan", "optim.lr must be a finite number"),
    ('train.steps="forty"', "train.steps must be an integer; got 'forty' (str)"),
    ("train.steps=4.5", "train.steps must be an integer"),
    ('optim.betas="x"', "optim.betas must be two numbers"),
    ("log.progress=3", "log.progress must be true or false"),
])
def test_recipe_values_are_type_checked_by_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_recipe(TINY_RECIPE, [override])


def test_metrics_jsonl_is_strict_json(tmp_path):
    from maskattn_trt.train.metrics import JsonlMetrics

    metrics = JsonlMetrics(tmp_path / "metrics.jsonl")
    metrics.on_start({"start_step": 0})
    metrics.on_step({"step": 1, "loss": float("nan"), "grad_norm": float("inf"), "logged": True})
    line = (tmp_path / "metrics.jsonl").read_text()
    assert "NaN" not in line and "Infinity" not in line
    assert json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON token {c}")) == {
        "step": 1, "loss": None, "grad_norm": None}
