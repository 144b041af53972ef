"""`maskattn-trt train` as a user types it: tiny recipe, stop, resume, export the result, one-line errors."""

from maskattn_trt.gates import read_gate_checkpoint
from maskattn_trt.train.metrics import read_metrics

from ..train.helpers import TINY_RECIPE


def test_train_stop_resume_and_export(run_cli, tmp_path):
    out = tmp_path / "run"
    args = ("train", "--recipe", TINY_RECIPE, "--out", out, "--steps", 6, "--no-progress",
            "--set", "checkpoint.every=2", "--set", "data.synthetic_samples=16")
    code, stdout, err = run_cli(*args, "--stop-after", 3)
    assert code == 0, err
    assert "stopped at step 3/6" in stdout and "continue with --resume" in stdout
    assert not (out / "gates.safetensors").exists()
    code, stdout, err = run_cli(*args, "--resume")
    assert code == 0, err
    assert "finished: 3 steps" in stdout and f"gates: {out / 'gates.safetensors'}" in stdout
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [3, 5, 6]  # log.every=5 + last step of each run
    _, meta = read_gate_checkpoint(out / "gates.safetensors")
    assert meta["extra"]["step"] == 6 and meta["config"]["hidden_size"] == 32

    code, stdout, err = run_cli("export", "--model", "tiny-random", "--gates", out / "gates.safetensors",
                                "--out", tmp_path / "onnx", "--static", "--no-slim")
    assert code == 0, err
    assert list((tmp_path / "onnx").glob("*.onnx"))


def test_train_errors_are_one_line(run_cli, tmp_path):
    code, _, err = run_cli("train", "--recipe", TINY_RECIPE, "--set", "optim.learning_rate=1", "--out", tmp_path)
    assert code == 2 and err.count("\n") == 1
    assert "unknown key(s) optim.learning_rate" in err
    code, _, err = run_cli("train", "--recipe", TINY_RECIPE, "--out", tmp_path / "r", "--data-format", "jsonl",
                           "--data", tmp_path / "missing.jsonl", "--no-progress")
    assert code == 2 and "manifest" in err and "does not exist" in err


def test_cache_only_encodes_the_dataset_once(run_cli, tmp_path):
    cache = tmp_path / "cache"
    args = ("train", "--recipe", TINY_RECIPE, "--out", tmp_path / "run", "--no-progress",
            "--set", f'data.cache_dir="{cache}"', "--set", "data.synthetic_samples=8", "--cache-only")
    code, out, err = run_cli(*args)
    assert code == 0, err
    assert f"cache ready: {cache}" in out and (cache / "index.json").is_file()
    assert not (tmp_path / "run" / "gates.safetensors").exists()  # nothing trained
    code, _, err = run_cli("train", "--recipe", TINY_RECIPE, "--out", tmp_path / "r2", "--cache-only")
    assert code == 2 and "data.cache_dir is not set" in err
