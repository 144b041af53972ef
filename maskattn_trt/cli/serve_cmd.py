"""``maskattn-trt serve``: options are parsed here, the work is in :mod:`maskattn_trt.serve.server`
(Ray is imported only when the command runs)."""

from __future__ import annotations

import click

from .options import model_option, resolve_gates


@click.command("serve")
@model_option
@click.option("--gates", "gates_path", type=click.Path(dir_okay=False), default=None,
              help="Gate checkpoint, or 'none'. eager: default the shipped gates with --model tiny; for "
                   "onnxruntime/tensorrt it must be the one baked into the export/engine.")
@click.option("--backend", type=click.Choice(["eager", "onnxruntime", "tensorrt"]), default="onnxruntime",
              show_default=True, help="Who runs the UNet.")
@click.option("--onnx", type=click.Path(), default=None, help="Export folder for --backend onnxruntime.")
@click.option("--engine", type=click.Path(dir_okay=False), default=None, help="Engine file for --backend tensorrt.")
@click.option("--replicas", type=int, default=1, show_default=True, help="Replicas (each loads the model once).")
@click.option("--max-batch", type=int, default=None,
              help="Most images per UNet call (x2 with guidance). Default: half the runner's profile batch, at most 8.")
@click.option("--batch-wait-ms", type=float, default=10.0, show_default=True,
              help="How long a batch waits for more compatible requests before it runs.")
@click.option("--request-timeout-s", type=float, default=120.0, show_default=True,
              help="A request still unanswered after this gets HTTP 504 and its queued images are dropped.")
@click.option("--max-steps", type=int, default=150, show_default=True, help="Most steps a request may ask for.")
@click.option("--max-images", type=int, default=4, show_default=True, help="Most images one request may ask for.")
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP host (0.0.0.0 to listen on every interface).")
@click.option("--port", type=int, default=8000, show_default=True, help="HTTP port.")
@click.option("--address", default=None,
              help="Ray cluster to join ('auto', HOST:6379 or ray://HOST:10001). Default: start a local Ray.")
@click.option("--num-cpus", type=float, default=1.0, show_default=True, help="CPUs reserved per replica.")
@click.option("--num-gpus", type=float, default=0.0, show_default=True, help="GPUs per replica (1 on GPU nodes).")
@click.option("--threads", type=int, default=None,
              help="Torch and ONNX Runtime intra-op threads per replica (default: the libraries' own).")
@click.option("--log-encoding", type=click.Choice(["JSON", "TEXT"]), default="JSON", show_default=True,
              help="Replica log format (Ray Serve's structured logs).")
def serve(model, gates_path, backend, onnx, engine, replicas, max_batch, batch_wait_ms, request_timeout_s, max_steps,
          max_images, host, port, address, num_cpus, num_gpus, threads, log_encoding):
    """Serve images over HTTP with Ray Serve, batching concurrent compatible requests into one UNet batch.

    Ready once every replica has loaded and warmed up; Ctrl-C (or SIGTERM) finishes in-flight requests and stops.

    \b
    Examples:
      maskattn-trt serve --backend onnxruntime --onnx export/out/tiny --port 8000
      curl -s localhost:8000/generate -d '{"prompt": "a red cat", "steps": 20, "seed": 1}'
      maskattn-trt serve --model /models/sdxl --backend tensorrt --engine engines/sdxl.engine \\
          --replicas 2 --num-gpus 1 --address auto --host 0.0.0.0
    """
    from ..serve.model import ModelConfig
    from ..serve.server import ServerConfig, serve_forever

    config = ServerConfig(
        model=ModelConfig(model=model, backend=backend, onnx=onnx, engine=engine,
                          gates=resolve_gates(model, gates_path, backend), threads=threads,
                          max_batch=max_batch, max_steps=max_steps, max_images=max_images),
        replicas=replicas, batch_wait_ms=batch_wait_ms, request_timeout_s=request_timeout_s, host=host, port=port,
        address=address, num_cpus=num_cpus, num_gpus=num_gpus, log_encoding=log_encoding)
    serve_forever(config, echo=click.echo)
