"""Fixtures for the serving tests: a tiny gated ONNX export and a live ``maskattn-trt serve`` on it.

The server runs as the real CLI in a subprocess (local Ray instance, 127.0.0.1, a free port) and is shared
by the tests of one module; it is stopped with SIGINT, the way a user stops it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import has_module

HAS_RAY = has_module("ray") and has_module("ray.serve")
requires_ray = pytest.mark.skipif(not HAS_RAY, reason="Ray Serve is not installed (pip install -e '.[serve]')")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")
def serve_export(tmp_path_factory):
    """(export folder, gate checkpoint): the tiny UNet (seed 0) with trained-looking gates, ONNX fp32, batch 1..8."""
    from maskattn_trt.export.from_model import ExportRequest, export_model
    from maskattn_trt.gates import install_gates, randomize_gates, save_gates
    from maskattn_trt.models import tiny_sdxl_pipeline

    pipe = tiny_sdxl_pipeline(0)
    install_gates(pipe.unet)
    randomize_gates(pipe.unet, seed=0)
    gates = save_gates(pipe.unet, tmp_path_factory.mktemp("serve_gates") / "gates.safetensors")
    out = tmp_path_factory.mktemp("serve_export") / "tiny"
    export_model(ExportRequest(out=out, model="tiny-random", gates=gates, batch="1:4:8", slim=False), progress=False)
    return out, gates


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``maskattn-trt serve`` in a subprocess; ``lines`` collects its output."""

    def __init__(self, args: list[str], port: int, ready_timeout_s: float = 120.0):
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   RAY_DEDUP_LOGS="0", PYTHONUNBUFFERED="1")
        self.url = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "maskattn_trt.cli", "serve", "--port", str(port), *args],
                                     cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._ready = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()
        if not self._ready.wait(ready_timeout_s) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("server did not become ready:\n" + "\n".join(self.lines[-30:]))

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if line.startswith("ready:"):
                self._ready.set()
        self._ready.set()

    def stop(self, timeout_s: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="module")
def server(serve_export):
    """A live server on the tiny export: batches of up to 4 images, 20 ms batch wait, 10 s request timeout."""
    if not HAS_RAY:
        pytest.skip("Ray Serve is not installed (pip install -e '.[serve]')")
    onnx, gates = serve_export
    proc = ServerProcess(["--model", "tiny-random", "--backend", "onnxruntime", "--onnx", str(onnx), "--gates", str(gates), "--max-batch", "4",
                          "--batch-wait-ms", "20", "--request-timeout-s", "10", "--num-cpus", "1", "--threads", "2"],
                         free_port())
    start = time.perf_counter()
    yield proc
    proc.stop()
    print(f"server stopped in {time.perf_counter() - start:.1f} s")
