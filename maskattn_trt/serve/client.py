"""A small client for ``maskattn-trt serve`` (standard library only, safe to call from many threads).

    from maskattn_trt.serve.client import Client

    client = Client("http://127.0.0.1:8000")
    client.wait_ready(timeout_s=120)
    for image in client.generate("a red cat on a blue sofa", steps=20, seed=3, images=2):
        image.save("out/served")            # <stem>.png + <stem>.json (the same sidecar as `generate`)
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import MaskAttnError


class ServeError(MaskAttnError):
    """The server answered with an error (``status``; ``error`` is its JSON error object) or not at all."""

    def __init__(self, status: int | None, error: dict | str):
        self.status = status
        self.error = error if isinstance(error, dict) else {"message": str(error)}
        super().__init__(f"HTTP {status}: {self.error.get('message', error)}" if status else str(error))


@dataclass
class ServedImage:
    seed: int
    png: bytes
    metadata: dict  # what `generate` writes in its JSON sidecar
    serve: dict  # server-side timings: queue_s, png_s, total_s

    def pixels(self):
        """The image as a uint8 array [H, W, 3]."""
        import io

        import numpy as np
        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(self.png)).convert("RGB"))

    def save(self, out_dir: str | Path, stem: str | None = None) -> Path:
        """Write ``<stem>.png`` and ``<stem>.json`` into ``out_dir``; returns the PNG path."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = stem or f"served_s{self.seed}"
        (out / f"{stem}.json").write_text(json.dumps(self.metadata, indent=2))
        path = out / f"{stem}.png"
        path.write_bytes(self.png)
        return path


class Client:
    def __init__(self, url: str = "http://127.0.0.1:8000", timeout_s: float = 300.0):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: bytes | None = None, timeout_s: float | None = None) -> dict:
        request = urllib.request.Request(self.url + path, data=body, method=method,
                                         headers={"Content-Type": "application/json"} if body is not None else {})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s or self.timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                error = json.loads(raw).get("error", raw.decode(errors="replace"))
            except (json.JSONDecodeError, AttributeError):
                error = raw.decode(errors="replace") or exc.reason
            raise ServeError(exc.code, error) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            raise ServeError(None, f"no answer from {self.url}{path}: {getattr(exc, 'reason', exc)}") from None

    def health(self) -> dict:
        return self._call("GET", "/healthz", timeout_s=10.0)

    def stats(self) -> dict:
        return self._call("GET", "/stats", timeout_s=10.0)

    def wait_ready(self, timeout_s: float = 120.0, poll_s: float = 0.5) -> dict:
        """Poll ``/healthz`` until it answers 200 (or raise ServeError after ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.health()
            except ServeError as exc:
                if time.monotonic() > deadline:
                    raise ServeError(exc.status, f"server at {self.url} not ready after {timeout_s:g} s: {exc}") from None
            time.sleep(poll_s)

    def generate_raw(self, payload: dict) -> dict:
        return self._call("POST", "/generate", json.dumps(payload).encode())

    def generate(self, prompt: str, **settings) -> list[ServedImage]:
        """``settings``: negative_prompt, steps, guidance, scheduler, seed, width, height, images."""
        answer = self.generate_raw({"prompt": prompt, **settings})
        return [ServedImage(i["seed"], base64.b64decode(i["png_base64"]), i["metadata"], i.get("serve", {}))
                for i in answer["images"]]
