"""Two CPU processes (gloo) under torchrun: DDP over the gate parameters keeps every rank's gates identical."""

import os
import shutil
import socket
import subprocess
import sys

import pytest

from maskattn_trt.gates import gates_hash, load_gates
from maskattn_trt.models import build_unet

from .helpers import REPO, TINY_RECIPE

WORKER = os.path.join(os.path.dirname(__file__), "ddp_worker.py")
LAUNCH = REPO / "train" / "launch.sh"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.smoke  # the one 2-process launch in the README test command (CI): DDP keeps the ranks' gates equal
def test_two_process_gloo_run_keeps_gate_weights_identical(tmp_path):
    torchrun = shutil.which("torchrun")
    command = ([torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]) + [
        "--nproc-per-node", "2", "--master-port", str(_free_port()), WORKER, str(TINY_RECIPE), str(tmp_path),
        "train.steps=6", "train.batch_size=2", "train.effective_batch=8",  # 2 per process x 2 x 2 micro-steps
        "checkpoint.every=3", "log.every=3",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = (tmp_path / "rank0.txt").read_text().split()
    rank1 = (tmp_path / "rank1.txt").read_text().split()
    assert rank0[1:] == ["2", "6", "6"]  # world size 2, 6 steps, 6 steps run
    assert rank0[0] == rank1[0], "gate weights differ between ranks after DDP training"

    # the file rank 0 wrote holds those same weights, and they moved away from the initial heads
    unet = build_unet("tiny-random", seed=0)
    load_gates(unet, tmp_path / "gates.safetensors")
    assert gates_hash(unet) == rank0[0]
    init = build_unet("tiny-random", seed=0)
    load_gates(init, tmp_path / "checkpoints" / "step-00000003" / "gates.safetensors")
    assert gates_hash(init) != rank0[0]


@pytest.mark.slow  # the same 2-process training through train/launch.sh (pytest -m slow)
@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_launch_script_runs_two_processes(tmp_path, launcher):
    if launcher == "accelerate" and not shutil.which("accelerate"):
        pytest.skip("the accelerate command is not on PATH")
    env = {**os.environ, "LAUNCHER": launcher, "NPROC": "2", "MASTER_PORT": str(_free_port()),
           "PYTHON": sys.executable, "TRANSFORMERS_VERBOSITY": "error"}
    proc = subprocess.run(["bash", str(LAUNCH), str(TINY_RECIPE), "--out", str(tmp_path), "--steps", "3",
                           "--no-progress", "--set", "data.synthetic_samples=8"],
                          capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "finished: 3 steps" in proc.stdout and "on 2 process(es)" in proc.stdout
    assert (tmp_path / "gates.safetensors").is_file()
