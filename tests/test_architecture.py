"""The package's layer contract (.importlinter) holds: every module imports only from layers below its own.

Also checks what import-linter cannot see: package-internal imports sit at module top (a reader sees a
module's dependencies there), except in the CLI, whose commands import lazily so `--help` stays instant, and
where a module that imports a heavy optional package (ray) is itself imported lazily, marked `# lazy: <why>`.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "maskattn_trt"


def test_layer_contract_is_kept():
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is missing: install the dev extra (pip install -e '.[dev]')")
    run = subprocess.run([exe, "--config", str(ROOT / ".importlinter"), "--no-cache"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def _function_level_internal_imports(path: Path) -> list[str]:
    text = path.read_text()
    lines = text.splitlines()
    tree = ast.parse(text)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and (inner.level > 0 or (inner.module or "").startswith(
                        "maskattn_trt")) and "# lazy:" not in lines[inner.lineno - 1]:
                    found.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    return found


def test_package_internal_imports_are_at_module_top():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "cli" in path.relative_to(PACKAGE).parts:
            continue
        offenders += _function_level_internal_imports(path)
    assert not offenders, f"package-internal imports inside functions: {offenders}"
