"""The Ray Serve deployment: one replica = one loaded pipeline + runner, answering JSON over HTTP.

Routes (under the application's route prefix):
  POST /generate   {"prompt", "negative_prompt", "steps", "guidance", "scheduler", "seed", "width", "height",
                    "images"} -> {"images": [{"seed", "png_base64", "metadata", "serve"}], "request_id"}
  GET  /healthz    200 once the model is loaded and warmed up (a replica only takes traffic after that)
  GET  /stats      this replica's counters (requests, images, batch sizes, step latency, memory) as JSON

Every image of a request is queued on ``@serve.batch``; the batch handler splits what it receives into
compatible groups (:mod:`.batching`) and runs each as one UNet batch on a single worker thread, so the
replica's event loop keeps accepting requests (and filling the next batch) while the UNet runs. Bad requests
get a 4xx JSON error naming field / expected / found; a request that outlives ``request_timeout_s`` gets a 504
and its queued images are dropped; when every request of a running batch has gone, that batch stops.
Counters go to Ray's Prometheus metrics (``maskattn_*``) and logs are Ray Serve's structured (JSON) logs.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import ray
from ray import serve
from ray.serve import metrics
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..errors import BadInputError
from .batching import Item, plan
from .model import ImageResult, ModelConfig, ServedModel
from .schema import RequestError, decode_body, parse_generate

logger = logging.getLogger("ray.serve")
_STEP_MS_BOUNDS = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000]


@dataclass(frozen=True)
class AppConfig:
    """One replica's behaviour (the model it loads and how it batches)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    batch_wait_ms: float = 10.0
    request_timeout_s: float = 120.0
    warm_up: bool = True


class Stats:
    """Per-replica counters, mirrored into Ray's Prometheus metrics."""

    def __init__(self, max_batch: int):
        self.requests: dict[str, int] = {}
        self.images = 0
        self.batches: dict[int, int] = {}
        self.step_ms_sum = 0.0
        self.steps = 0
        self._requests = metrics.Counter("maskattn_requests", "Requests answered, by HTTP status.",
                                         tag_keys=("status",))
        self._images = metrics.Counter("maskattn_images", "Images generated.")
        self._batch = metrics.Histogram("maskattn_batch_images", "Images per UNet batch.",
                                        boundaries=[float(b) for b in range(1, max_batch + 1)])
        self._step = metrics.Histogram("maskattn_step_ms", "Denoising latency per step of one batch (ms).",
                                       boundaries=_STEP_MS_BOUNDS)
        self._latency = metrics.Histogram("maskattn_request_s", "Request latency inside the replica (s).",
                                          boundaries=[0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 60, 120])

    def request(self, status: int, seconds: float) -> None:
        self.requests[str(status)] = self.requests.get(str(status), 0) + 1
        self._requests.inc(tags={"status": str(status)})
        self._latency.observe(seconds)

    def batch(self, images: int, step_ms: float, steps: int) -> None:
        self.images += images
        self.batches[images] = self.batches.get(images, 0) + 1
        self.step_ms_sum += step_ms * steps
        self.steps += steps
        self._images.inc(images)
        self._batch.observe(images)
        self._step.observe(step_ms)

    def snapshot(self) -> dict:
        runs = sum(self.batches.values())
        return {**_memory(), "requests": dict(self.requests), "images": self.images, "batches": runs,
                "batch_sizes": {str(k): v for k, v in sorted(self.batches.items())},
                "mean_batch_images": round(self.images / runs, 3) if runs else 0.0,
                "mean_step_ms": round(self.step_ms_sum / self.steps, 3) if self.steps else 0.0}


def _memory() -> dict:
    """Where this replica runs, and its process's resident memory now and at its peak (Linux /proc), MiB."""
    fields = {"VmRSS:": "rss_mib", "VmHWM:": "peak_rss_mib"}
    out = {"pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id()}
    try:
        for line in open("/proc/self/status"):
            key = line.split()[0] if line.strip() else ""
            if key in fields:
                out[fields[key]] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return out


def _error(status: int, kind: str, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message, **extra}}, status_code=status)


@serve.deployment(name="MaskAttnSDXL")
class MaskAttnServer:
    def __init__(self, config: AppConfig):
        start = time.perf_counter()
        self.config = config
        self.model = ServedModel(config.model)
        self.limits = self.model.limits
        self.stats = Stats(self.model.max_batch)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="maskattn-unet")
        self._batched.set_max_batch_size(self.model.max_batch)
        self._batched.set_batch_wait_timeout_s(config.batch_wait_ms / 1000.0)
        warm = self.model.warm_up() if config.warm_up else 0.0
        self.ready = True
        logger.info("replica ready: %s (load %.2f s, warm-up %.2f s)", self.model.describe(),
                    time.perf_counter() - start - warm, warm, extra={"event": "ready", "warm_up_s": warm})

    # ------------------------------------------------------------------ batching
    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.01)
    async def _batched(self, items: list[Item]) -> list[ImageResult]:
        loop = asyncio.get_running_loop()
        results: dict[int, ImageResult] = {}
        for run in plan(items, self.model.capacity):
            live = [item for item in run if not item.cancelled]
            if not live:
                continue
            outcome = await loop.run_in_executor(self._worker, self.model.run, live)
            for item, result in zip(live, outcome, strict=True):
                results[id(item)] = result
            done = outcome[0]
            if done.error is None:
                timings = done.metadata["timings"]
                self.stats.batch(len(live), timings["denoise_step_ms"], live[0].params.steps)
                logger.info("batch of %d image(s) %sx%s, %d steps, %.1f ms/step", len(live), live[0].params.width,
                            live[0].params.height, live[0].params.steps, timings["denoise_step_ms"],
                            extra={"event": "batch", "images": len(live), "step_ms": timings["denoise_step_ms"]})
        gone = ImageResult(error=asyncio.CancelledError("request cancelled before its batch ran"))
        return [results.get(id(item), gone) for item in items]

    # ------------------------------------------------------------------ HTTP
    async def __call__(self, request: Request) -> JSONResponse:
        start = time.perf_counter()
        path, method = request.url.path.rstrip("/") or "/", request.method
        if path == "/healthz" and method == "GET":
            return JSONResponse({"status": "ready" if self.ready else "loading", **self.model.describe(),
                                 "warm_up_s": round(self.model.warm_seconds, 3)},
                                status_code=200 if self.ready else 503)
        if path == "/stats" and method == "GET":
            return JSONResponse(self.stats.snapshot())
        if path != "/generate":
            return _error(404, "not_found", f"no route {path}; use POST /generate, GET /healthz or GET /stats")
        if method != "POST":
            return _error(405, "method_not_allowed", f"{path} takes POST with a JSON body; got {method}")
        response = await self._generate(request)
        self.stats.request(response.status_code, time.perf_counter() - start)
        return response

    async def _read(self, request: Request) -> bytes:
        limit = self.limits.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestError(None, f"a body of at most {limit} bytes", f"{declared} bytes", 413, "body_too_large",
                               described=True)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise RequestError(None, f"a body of at most {limit} bytes", f"more than {limit} bytes", 413,
                                   "body_too_large", described=True)
        return body

    async def _generate(self, request: Request) -> JSONResponse:
        start = time.perf_counter()
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
        try:
            params = parse_generate(decode_body(await self._read(request), self.limits), self.limits)
        except RequestError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        items = [Item(params, seed, request_id) for seed in params.seeds]
        try:
            results = await asyncio.wait_for(asyncio.gather(*(self._batched(item) for item in items)),
                                             self.config.request_timeout_s)
        except asyncio.TimeoutError:
            for item in items:
                item.cancelled = True
            return _error(504, "timeout", f"the request did not finish within {self.config.request_timeout_s:g} s "
                          "(server busy or the request too large); retry later or ask for fewer steps/images",
                          timeout_s=self.config.request_timeout_s)
        except asyncio.CancelledError:  # the client went away: its queued images are dropped
            for item in items:
                item.cancelled = True
            raise
        failed = next((r.error for r in results if r.error is not None), None)
        if isinstance(failed, BadInputError):
            return _error(422, "invalid_settings", str(failed))
        if failed is not None:
            logger.error("request %s failed: %r", request_id, failed, extra={"event": "error"})
            return _error(500, "internal", f"{type(failed).__name__}: {failed}")
        total = time.perf_counter() - start
        images = [{"seed": item.seed, "png_base64": base64.b64encode(result.png).decode("ascii"),
                   "metadata": result.metadata, "serve": {**result.timings, "total_s": round(total, 4)}}
                  for item, result in zip(items, results, strict=True)]
        return JSONResponse({"request_id": request_id, "images": images})

    # ------------------------------------------------------------------ lifecycle
    def check_health(self) -> None:
        if not self.model.backend.runner.is_active:
            raise RuntimeError("the UNet runner is not active")

    def __del__(self):
        worker = getattr(self, "_worker", None)
        if worker is not None:
            worker.shutdown(wait=True)
        model = getattr(self, "model", None)
        if model is not None:
            model.close()


def build_app(config: AppConfig, *, replicas: int = 1, num_cpus: float = 1.0, num_gpus: float = 0.0,
              log_encoding: str = "JSON"):
    """The bound Serve application (deploy it with ``serve.run``)."""
    max_batch = config.model.max_batch or 4
    return MaskAttnServer.options(
        num_replicas=replicas,
        ray_actor_options={"num_cpus": num_cpus, "num_gpus": num_gpus},
        # room for one running batch and the next one filling up, per replica
        max_ongoing_requests=max(16, 4 * max_batch),
        graceful_shutdown_timeout_s=config.request_timeout_s + 5.0,
        graceful_shutdown_wait_loop_s=0.5,
        health_check_period_s=5.0,
        logging_config={"encoding": log_encoding, "log_level": "INFO", "enable_access_log": True},
    ).bind(config)
