"""`maskattn-trt build-engine` and `refit` as a user types them: one-line errors with exit codes."""

from __future__ import annotations

import pytest

from maskattn_trt.errors import BadInputError, EngineBuildError

from ..conftest import requires_rtx

pytestmark = [requires_rtx, pytest.mark.rtx]


def _engines(folder):
    return sorted(p.name for p in folder.rglob("*")
                  if p.is_file() and (p.suffix in (".engine", ".tmp") or p.name.endswith(".manifest.json")))


def test_cli_errors_are_one_line_with_exit_codes(run_cli, fp32_export, fp32_engine, tmp_path):
    code, _, err = run_cli("build-engine", "--onnx", fp32_export.out_dir, "--out", tmp_path / "e.engine",
                           "--builder", "tensorrt-rtx", "--height", "100")
    assert code == BadInputError.exit_code and err.startswith("error: ") and err.count("\n") == 1
    code, _, err = run_cli("build-engine", "--onnx", fp32_export.out_dir, "--out", tmp_path / "e.engine",
                           "--builder", "tensorrt-rtx", "--compute-capability", "SM42")
    assert code == BadInputError.exit_code and "SM75, SM80, SM86, SM89, SM120" in err
    code, _, err = run_cli("refit", "--engine", fp32_engine, "--gates", tmp_path / "missing.safetensors")
    assert code == EngineBuildError.exit_code and "not built refittable" in err
    assert _engines(tmp_path) == []
