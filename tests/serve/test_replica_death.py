"""A replica killed mid-request: the in-flight request gets an HTTP error (no hang), Ray Serve starts a new
replica, and the server answers again. Slow (a second server and a replica restart: ~40 s on 2 cores)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from maskattn_trt.serve.client import Client, ServeError

from .conftest import ServerProcess, free_port, requires_ray

pytestmark = [requires_ray, pytest.mark.slow]

KILL = """
import sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith("SERVE_REPLICA::")]
assert len(names) == 1, names
ray.kill(ray.get_actor(names[0], namespace="serve"), no_restart=True)
print("killed", names[0])
"""


def test_killed_replica_fails_in_flight_request_then_recovers(serve_export):
    onnx, gates = serve_export
    server = ServerProcess(["--model", "tiny-random", "--backend", "onnxruntime", "--onnx", str(onnx), "--gates", str(gates),
                            "--request-timeout-s", "60"], free_port())
    try:
        address = re.search(r"Ray cluster (\S+)", next(line for line in server.lines if line.startswith("ready:")))
        client = Client(server.url, timeout_s=90)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(client.generate, "a long job", steps=150, images=2, width=128, height=128)
            time.sleep(1.5)
            killed = time.perf_counter()
            # a separate driver joins the cluster (Ray >= 2.5x starts local clusters with token auth; the token
            # is in ~/.ray/auth_token) and kills the only replica
            done = subprocess.run([sys.executable, "-c", KILL, address.group(1)], capture_output=True, text=True,
                                  timeout=60, env=dict(os.environ, RAY_AUTH_MODE="token"))
            assert done.returncode == 0 and "killed SERVE_REPLICA::" in done.stdout, done.stdout + done.stderr
            with pytest.raises(ServeError) as caught:
                pending.result(timeout=60)
        assert caught.value.status is None or caught.value.status >= 500, caught.value
        assert time.perf_counter() - killed < 30, "the in-flight request hung after its replica died"
        client.wait_ready(timeout_s=90)
        assert client.generate("after the restart", steps=2, width=64, height=64)[0].png.startswith(b"\x89PNG")
    finally:
        assert server.stop() == 0
