"""Start, run and stop the Serve application: ``maskattn-trt serve`` as a library call.

``start`` connects to a Ray cluster (``address``) or starts a local one, starts Serve's HTTP proxy on
``host:port`` and deploys the application; it returns once every replica has loaded and warmed up, so the
server is ready when it returns. ``stop`` deletes the application (Serve stops routing to it, lets in-flight
requests finish within the graceful-shutdown timeout), then shuts Serve and the local Ray instance down.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BackendUnavailableError, BadInputError, MaskAttnError
from .model import BACKENDS, ModelConfig

APP_NAME = "maskattn"


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``maskattn-trt serve`` needs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    replicas: int = 1
    batch_wait_ms: float = 10.0
    request_timeout_s: float = 120.0
    host: str = "127.0.0.1"
    port: int = 8000
    address: str | None = None  # a Ray cluster ("auto", "ray://host:10001", "host:6379"); None = start a local one
    num_cpus: float = 1.0  # per replica
    num_gpus: float = 0.0  # per replica
    log_encoding: str = "JSON"
    warm_up: bool = True

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def check_config(config: ServerConfig) -> None:
    """Refuse, before Ray starts, what can be refused cheaply (the replica checks the rest while loading)."""
    m = config.model
    if m.backend not in BACKENDS:
        raise BadInputError(f"unknown backend {m.backend!r}; choose one of {', '.join(BACKENDS)}")
    for label, path in (("--onnx", m.onnx), ("--engine", m.engine), ("--gates", m.gates)):
        if path and not Path(path).exists():
            raise BadInputError(f"{label} {path} does not exist; pass the path of an existing file or folder")
    for label, value, lo in (("--replicas", config.replicas, 1), ("--max-batch", m.max_batch or 1, 1),
                             ("--max-steps", m.max_steps, 1), ("--max-images", m.max_images, 1)):
        if value < lo:
            raise BadInputError(f"{label} must be >= {lo}; got {value}")
    if config.batch_wait_ms < 0 or config.request_timeout_s <= 0:
        raise BadInputError("--batch-wait-ms must be >= 0 and --request-timeout-s > 0")
    if not 0 < config.port < 65536:
        raise BadInputError(f"--port must be 1..65535; got {config.port}")


def _import_ray():
    try:  # optional dependency: `pip install "maskattn-trt[serve]"`
        import ray
        from ray import serve
    except ImportError as exc:
        raise BackendUnavailableError(f"Ray Serve is not installed ({exc}); pip install -e '.[serve]' "
                                      "(or pip install 'ray[serve]')") from exc
    return ray, serve


def _replica_error(exc: Exception) -> MaskAttnError:
    """The one line that matters from a replica that failed to start (Ray wraps it in a traceback)."""
    text = str(exc)
    found = re.findall(r"maskattn_trt\.errors\.\w+: (.+)", text)
    if found:
        return BadInputError(f"the replica could not load the model: {found[-1].strip()}")
    last = [line for line in text.strip().splitlines() if line.strip()]
    return MaskAttnError(f"the Serve application failed to start: {last[-1].strip() if last else type(exc).__name__}")


def start(config: ServerConfig) -> str:
    """Start (or join) Ray, start Serve's proxy and deploy; returns the base URL once replicas are warm."""
    check_config(config)
    ray, serve = _import_ray()
    from .app import AppConfig, build_app  # lazy: app imports ray, an optional extra

    if not ray.is_initialized():
        ray.init(address=config.address, include_dashboard=False, logging_level="WARNING",
                 log_to_driver=False, configure_logging=True)
    serve.start(http_options={"host": config.host, "port": config.port,
                              "request_timeout_s": config.request_timeout_s + 10.0})
    app = build_app(AppConfig(config.model, config.batch_wait_ms, config.request_timeout_s, config.warm_up),
                    replicas=config.replicas, num_cpus=config.num_cpus, num_gpus=config.num_gpus,
                    log_encoding=config.log_encoding)
    try:
        serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
    except Exception as exc:  # noqa: BLE001 - Ray raises several types for a failed deployment
        stop(config)
        raise _replica_error(exc) from None
    return config.url


def stop(config: ServerConfig | None = None) -> None:
    """Delete the application (in-flight requests finish first), then shut Serve and our Ray connection down."""
    ray, serve = _import_ray()
    if not ray.is_initialized():
        return
    try:
        serve.delete(APP_NAME, _blocking=True)
    finally:
        serve.shutdown()
        ray.shutdown()


def serve_forever(config: ServerConfig, echo=print) -> None:
    """``start``, print where it listens, wait for Ctrl-C / SIGTERM, then ``stop`` gracefully."""
    started = time.perf_counter()
    url = start(config)
    ray, _ = _import_ray()
    echo(f"ready: {url} (POST /generate, GET /healthz, GET /stats) | {config.replicas} replica(s), backend "
         f"{config.model.backend}, started in {time.perf_counter() - started:.1f} s | Ray cluster "
         f"{ray.get_runtime_context().gcs_address} | Ctrl-C to stop")
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        echo("stopping: finishing in-flight requests")
        t0 = time.perf_counter()
        stop(config)
        echo(f"stopped in {time.perf_counter() - t0:.1f} s")
