"""Training callbacks: progress bar, JSONL metrics, optional TensorBoard.

The loop calls ``on_start(info)``, ``on_step(record)`` (every step; ``record["logged"]`` marks steps whose
record carries the full metrics: loss, lr, grad norm, per-site gate open fraction), ``on_checkpoint(path)``
and ``on_end(summary)``. Only the main process gets callbacks.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import BackendUnavailableError
from ..utils.io import strict_json
from ..utils.progress import progress_bar


class Callback:
    def on_start(self, info: dict) -> None:
        pass

    def on_step(self, record: dict) -> None:
        pass

    def on_checkpoint(self, path: Path) -> None:
        pass

    def on_end(self, summary: dict) -> None:
        pass


class ProgressBar(Callback):
    """tqdm with loss, learning rate and throughput."""

    def __init__(self, disable: bool = False):
        self.disable = disable
        self.bar = None

    def on_start(self, info: dict) -> None:
        self.bar = progress_bar(not self.disable, total=info["steps"], initial=info["start_step"], desc="train",
                                unit="step", dynamic_ncols=True)

    def on_step(self, record: dict) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}",
                             samples_s=f"{record['samples_per_s']:.1f}", refresh=False)

    def on_end(self, summary: dict) -> None:
        if self.bar is not None:
            self.bar.close()


class JsonlMetrics(Callback):
    """One JSON object per logged step appended to ``metrics.jsonl`` (resumed runs continue the file)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_start(self, info: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if info["start_step"] and self.path.is_file():  # drop records past the checkpoint we resume from
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= info["start_step"]]
            self.path.write_text("".join(line + "\n" for line in kept))
        elif not info["start_step"]:
            self.path.write_text("")

    def on_step(self, record: dict) -> None:
        if record.get("logged"):
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(strict_json({k: v for k, v in record.items() if k != "logged"}, sort_keys=True) + "\n")


class TensorBoard(Callback):
    def __init__(self, log_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise BackendUnavailableError(
                "log.tensorboard=true needs the tensorboard package: pip install 'maskattn-trt[train]' "
                "(or set log.tensorboard=false; metrics.jsonl is always written)"
            ) from None
        self.writer = SummaryWriter(str(log_dir))

    def on_step(self, record: dict) -> None:
        if not record.get("logged"):
            return
        step = record["step"]
        for key in ("loss", "lr", "grad_norm", "samples_per_s"):
            self.writer.add_scalar(f"train/{key}", record[key], step)
        for site, value in record.get("open_fraction", {}).items():
            self.writer.add_scalar(f"gates/{site}", value, step)

    def on_end(self, summary: dict) -> None:
        self.writer.close()


def read_metrics(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
