"""Helpers of the bad-input catalogue (tests/cli/test_bad_input_*.py): hostile files and the one check every
case makes: a one-line error on stderr, the documented exit code, no traceback, nothing written."""

from __future__ import annotations

import os
from pathlib import Path

# exit codes (README "Exit codes"; maskattn_trt/errors.py)
USAGE = 2  # bad option value / bad input (click usage errors and BadInputError / ConfigError / ModelLoadError)
CHECKPOINT = 3
BACKEND = 6


def bad_files(root: Path) -> dict[str, Path]:
    """A path of each hostile kind: missing, a directory, empty, random bytes (truncated / one flipped byte are
    made from real files by the tests that have one)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "a_dir").mkdir(exist_ok=True)
    (root / "empty.bin").write_bytes(b"")
    (root / "random.bin").write_bytes(os.urandom(4096))
    return {"missing": root / "missing.bin", "directory": root / "a_dir", "empty": root / "empty.bin",
            "random": root / "random.bin"}


def truncated(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def flipped(src: Path, dst: Path) -> Path:
    data = bytearray(src.read_bytes())
    data[len(data) * 3 // 4] ^= 0x01  # in the tensor payload, not the header
    dst.write_bytes(bytes(data))
    return dst


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def assert_refused(result, code: int, *, contains: str = "") -> str:
    """``result`` = (exit code, stdout, stderr) of run_cli."""
    got, out, err = result
    assert got == code, f"exit {got}, expected {code}; stderr: {err!r}"
    assert "Traceback" not in err and "Traceback" not in out, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"not one line: {err!r}"
    assert contains.lower() in lines[0].lower(), f"{contains!r} not in {lines[0]!r}"
    return lines[0]
