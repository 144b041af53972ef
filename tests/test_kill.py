"""Kill tests: a process SIGKILLed in the middle of writing an artifact leaves the previous artifact, or nothing,
under the final name, never a partial one (issue 10, "A sweep that keeps it so").

Each child process writes a first version, then starts writing a second one and kills itself (SIGKILL, no
cleanup runs) at a fixed point inside the writer: deterministic, not timing-dependent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

KILL = "import os, signal\ndef die(*a, **k):\n    os.kill(os.getpid(), signal.SIGKILL)\n"


def run_child(code: str, cwd: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-c", KILL + textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_kill_during_image_write(tmp_path):
    run_child("""
        import numpy as np
        from PIL import Image
        from maskattn_trt.sampling.images import save_image
        image = np.full((16, 16, 3), 7, dtype=np.uint8)
        save_image(".", "0000_cat_s0", image, {"run": 1})
        real = Image.Image.save
        def half_then_die(self, fp, *a, **k):
            open(fp, "wb").write(b"\\x89PNG partial")
            die()
        Image.Image.save = half_then_die
        save_image(".", "0000_cat_s0", image, {"run": 2})
    """, tmp_path)
    from PIL import Image

    assert visible(tmp_path) == ["0000_cat_s0-2.json", "0000_cat_s0.json", "0000_cat_s0.png"]
    assert Image.open(tmp_path / "0000_cat_s0.png").getpixel((0, 0)) == (7, 7, 7)  # the first image, whole


@pytest.mark.slow
def test_kill_during_gate_checkpoint_write(tmp_path):
    run_child("""
        from maskattn_trt.gates import checkpoint, install_gates, randomize_gates, save_gates
        from maskattn_trt.models import build_unet
        unet = build_unet("tiny-random", seed=0)
        install_gates(unet)
        randomize_gates(unet, 0)
        save_gates(unet, "gates.safetensors")
        randomize_gates(unet, 1)
        def half_then_die(tensors, path, metadata=None):
            open(path, "wb").write(b"partial")
            die()
        checkpoint.save_file = half_then_die
        save_gates(unet, "gates.safetensors")
    """, tmp_path)
    from maskattn_trt.gates import read_gate_checkpoint

    assert visible(tmp_path) == ["gates.safetensors"]
    read_gate_checkpoint(tmp_path / "gates.safetensors")  # the first version, complete (hash verified)


def test_kill_during_json_and_engine_file_write(tmp_path):
    """Manifests, reports and engines go through atomic_path (build-engine streams the plan into its temporary)."""
    run_child("""
        from maskattn_trt.utils.io import atomic_path, write_json_atomic
        write_json_atomic("manifest.json", {"version": 1})
        open("unet.engine", "wb").write(b"ENGINE-1")
        with atomic_path("unet.engine") as tmp:
            with open(tmp, "wb") as handle:
                handle.write(b"ENGINE-2 first half")
                handle.flush()
                die()
    """, tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_text()) == {"version": 1}
    assert (tmp_path / "unet.engine").read_bytes() == b"ENGINE-1"
    assert visible(tmp_path) == ["manifest.json", "unet.engine"]


@pytest.mark.parametrize("point", ["writing", "swapping"])
def test_kill_during_folder_replacement(tmp_path, point):
    """atomic_dir (export folders, checkpoints, caches): killed while writing the new folder, or between moving
    the old one aside and the new one in, the final name holds the previous folder or nothing."""
    run_child(f"""
        import os
        from maskattn_trt.utils import io
        os.makedirs("export")
        open("export/manifest.json", "w").write("old")
        if "{point}" == "swapping":
            real = os.replace
            calls = []
            def replace_then_die(src, dst):
                calls.append(dst)
                real(src, dst)
                if len(calls) == 1:
                    die()  # old folder moved aside, new one not yet in
            io.os.replace = replace_then_die
        with io.atomic_dir("export") as tmp:
            open(tmp / "manifest.json", "w").write("new, half")
            if "{point}" == "writing":
                die()
    """, tmp_path)
    final = tmp_path / "export"
    assert not final.exists() or (final / "manifest.json").read_text() == "old"
    if point == "writing":
        assert (final / "manifest.json").read_text() == "old"


@pytest.mark.slow
def test_kill_during_export_keeps_the_previous_export(tmp_path):
    run_child("""
        from maskattn_trt.export import onnx as exp
        from maskattn_trt.export.from_model import ExportRequest, export_model
        request = ExportRequest(model="tiny-random", out="onnx", open_gates=True, static=True, slim=False, batch="1", height="32",
                                width="32")
        export_model(request, progress=False)
        exp.check_onnx_file = die  # the new graph is saved in the temporary folder: die before the swap
        export_model(request, progress=False)
    """, tmp_path)
    from maskattn_trt.artifacts import open_export

    assert visible(tmp_path) == ["onnx"]
    artifact = open_export(tmp_path / "onnx", require_manifest=True)
    artifact.onnx_sha256()  # the previous export, whole: its graph matches its manifest
