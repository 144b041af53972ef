"""A live ``maskattn-trt serve`` on the tiny ONNX export: batching, bit-identity with ``generate``, bad requests,
health, timeout, and a graceful stop (the last test)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from maskattn_trt.serve.client import Client, ServeError

from .conftest import requires_ray

pytestmark = requires_ray

FAST = {"steps": 4, "guidance": 5.0, "scheduler": "euler", "width": 64, "height": 64}
OTHER = {"steps": 3, "guidance": 4.0, "scheduler": "euler_a", "width": 32, "height": 48}
REQUESTS = [  # (prompt, negative, seed, settings, images)
    ("a red cat on a blue sofa", None, 1, FAST, 1),
    ("a green square left of a circle", "blurry", 2, FAST, 1),
    ("a dog in the snow", None, 3, FAST, 2),
    ("a yellow triangle", None, 5, OTHER, 1),
    ("a red cat on a blue sofa", None, 9, FAST, 1),
    ("two blue circles", None, 4, OTHER, 1),
]


def _references(serve_export, tmp_path, requests) -> dict:
    """What `maskattn-trt generate` writes for each (prompt, negative, seed, settings): {key: (pixels, sidecar)};
    one generate call per settings group, one image per UNet batch (generate's default --batch 1)."""
    from PIL import Image

    from maskattn_trt.sampling.generate import GenerateRequest, generate
    from maskattn_trt.sampling.prompts import PromptEntry
    from maskattn_trt.sampling.sampler import SampleSettings

    onnx, gates = serve_export
    groups: dict[tuple, list] = {}
    for prompt, negative, seed, settings, count in requests:
        for i in range(count):
            groups.setdefault(tuple(sorted(settings.items())), []).append((prompt, negative, seed + i))
    out = {}
    for n, (settings, jobs) in enumerate(groups.items()):
        settings = dict(settings)
        report = generate(GenerateRequest(
            prompts=tuple(PromptEntry(*job) for job in jobs), out=tmp_path / f"ref{n}", model="tiny-random",
            backend="onnxruntime", onnx=onnx, gates=gates, progress=False, threads=2,
            settings=SampleSettings(**settings)))
        for job, png in zip(jobs, report.images, strict=True):
            out[(*job, settings["scheduler"])] = (np.asarray(Image.open(png).convert("RGB")),
                                                  json.loads(png.with_suffix(".json").read_text()))
    return out


def test_healthz_reports_ready_model(server):
    health = Client(server.url).health()
    assert health["status"] == "ready" and health["backend"] == "onnxruntime" and health["gates_hash"]
    assert health["max_batch"] == 4 and health["sizes"] == [32, 128]


def test_concurrent_requests_batch_and_match_generate(server, serve_export, tmp_path):
    client = Client(server.url, timeout_s=60)
    barrier = threading.Barrier(len(REQUESTS))

    def send(spec):
        prompt, negative, seed, settings, images = spec
        barrier.wait()
        return client.generate(prompt, negative_prompt=negative, seed=seed, images=images, **settings)

    with ThreadPoolExecutor(len(REQUESTS)) as pool:
        answers = list(pool.map(send, REQUESTS))
    references = _references(serve_export, tmp_path, REQUESTS)
    shared = max(image.metadata["timings"]["batch_images"] for images in answers for image in images)
    assert shared > 1, "no two concurrent compatible requests shared a UNet batch"
    for (prompt, negative, seed, settings, count), images in zip(REQUESTS, answers, strict=True):
        assert [image.seed for image in images] == [seed + i for i in range(count)]
        for image in images:
            pixels, sidecar = references[(prompt, negative, image.seed, settings["scheduler"])]
            served = image.pixels()
            assert served.shape == pixels.shape
            diff = np.abs(served.astype(int) - pixels).max()
            assert diff == 0, (f"{prompt!r} seed {image.seed}: served image differs from generate by up to {diff} "
                               f"(batch of {image.metadata['timings']['batch_images']})")
            assert image.metadata.keys() == sidecar.keys()
            for key in sidecar.keys() - {"timings", "artifact"}:
                assert image.metadata[key] == sidecar[key], key
            assert image.metadata["timings"].keys() == sidecar["timings"].keys()
            assert image.serve["total_s"] > 0


BAD = [  # (body, status, field)
    ({"prompt": "x", "scheduler": "nope"}, 422, "scheduler"),
    ({"prompt": "x", "height": 60}, 422, "height"),  # not a multiple of 8
    ({"prompt": "x", "width": 256}, 422, "width"),  # outside the profile (32..128)
    ({"prompt": "x", "steps": 0}, 422, "steps"),
    ({"prompt": "x", "steps": 100000}, 422, "steps"),
    ({"prompt": "   "}, 422, "prompt"),
    ({"prompt": "y" * 5000}, 422, "prompt"),
    ({"prompt": 3}, 422, "prompt"),
    ({"prompt": "x", "steps": "4"}, 422, "steps"),
    ({"prompt": "x", "guidance": True}, 422, "guidance"),
    ({"prompt": "x", "images": 99}, 422, "images"),
    ({"prompt": "x", "colour": "red"}, 422, "colour"),
    ({}, 422, "prompt"),
]


@pytest.mark.parametrize("body,status,field", BAD)
def test_bad_request_names_field_expected_found(server, body, status, field):
    with pytest.raises(ServeError) as caught:
        Client(server.url).generate_raw(body)
    err = caught.value
    assert err.status == status, err
    assert err.error["field"] == field and err.error["expected"] and err.error["found"]


def _post(url: str, data: bytes, headers: dict | None = None):
    request = urllib.request.Request(url + "/generate", data=data, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_malformed_and_oversized_bodies_then_still_serving(server):
    status, body = _post(server.url, b"{not json")
    assert status == 400 and body["error"]["type"] == "invalid_json"
    status, body = _post(server.url, b"[1, 2]")
    assert status == 400 and "JSON object" in body["error"]["expected"]
    status, body = _post(server.url, json.dumps({"prompt": "x" * 100_000}).encode())
    assert status == 413 and body["error"]["type"] == "body_too_large"
    with pytest.raises(ServeError) as caught:
        Client(server.url)._call("GET", "/generate")
    assert caught.value.status == 405
    assert Client(server.url).generate("still here", seed=1, **FAST)[0].png.startswith(b"\x89PNG")


def test_stats_count_requests_and_batches(server):
    stats = Client(server.url).stats()
    assert stats["images"] >= 8 and stats["batches"] >= 1 and stats["mean_step_ms"] > 0
    assert stats["requests"].get("200", 0) >= 1 and stats["requests"].get("422", 0) >= 1


def test_client_disconnect_drops_the_work(server):
    client = Client(server.url, timeout_s=1.0)  # gives up (closes the connection) after 1 s
    with pytest.raises(ServeError):
        client.generate("abandoned", steps=150, images=4, width=128, height=128, seed=1)
    start = time.perf_counter()
    Client(server.url, timeout_s=30).generate("right after a disconnect", seed=2, **FAST)
    assert time.perf_counter() - start < 4, "the abandoned batch kept the replica busy"


def test_timeout_gives_504_and_drops_the_work(server):
    client = Client(server.url, timeout_s=60)
    start = time.perf_counter()
    with pytest.raises(ServeError) as caught:
        client.generate("a very long job", steps=150, images=4, width=128, height=128, seed=1)
    took = time.perf_counter() - start
    assert caught.value.status == 504 and caught.value.error["type"] == "timeout"
    assert took < 25, f"timeout after {took:.1f} s, configured 10 s"
    start = time.perf_counter()
    client.generate("right after", seed=2, **FAST)
    assert time.perf_counter() - start < 5, "the timed-out batch kept the replica busy"


def test_graceful_shutdown_finishes_in_flight_request(server):
    client = Client(server.url, timeout_s=60)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.generate, "in flight at shutdown", seed=3, steps=40, images=2, width=64, height=64)
        time.sleep(0.5)
        code = server.stop()
        images = pending.result()
    assert code == 0, "\n".join(server.lines[-20:])
    assert len(images) == 2 and any(line.startswith("stopped in") for line in server.lines)
