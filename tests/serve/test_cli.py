"""``maskattn-trt serve`` on the command line: help without Ray, one-line errors before Ray starts."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT


def test_help_does_not_import_ray():
    code = ("import sys; from maskattn_trt.cli import main\n"
            "try:\n    main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('RAY' if 'ray' in sys.modules else 'NO-RAY')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert "--max-batch" in out.stdout and "--batch-wait-ms" in out.stdout and "--address" in out.stdout
    assert out.stdout.strip().endswith("NO-RAY"), out.stdout[-200:] + out.stderr[-500:]


def test_missing_export_is_one_line_error(run_cli, tmp_path):
    code, out, err = run_cli("serve", "--backend", "onnxruntime", "--onnx", tmp_path / "nope")
    assert code == 2 and err.count("\n") == 1 and "--onnx" in err and "does not exist" in err


def test_bad_numbers_are_refused(run_cli, tmp_path):
    code, _, err = run_cli("serve", "--backend", "eager", "--replicas", "0")
    assert code == 2 and "--replicas must be >= 1" in err
    code, _, err = run_cli("serve", "--backend", "eager", "--port", "70000")
    assert code == 2 and "--port" in err
