"""Atomic file writing, output-folder rules and content hashing.

The rules every command that writes follows live here, once:

- :func:`atomic_path` / :func:`atomic_dir`: a temporary name next to the final one, renamed into place only when
  complete (an interrupted run never leaves a half-written file under the final name); files get the ordinary
  permissions of the umask; folders the call had to create are removed again if it fails.
- :func:`claim_output_dir`: a folder that a command REPLACES or fills with fixed names (an export, a training
  run) must be new, empty, or recognisably one of ours; anything else is refused unless forced, and the current
  folder (or one of its parents) is never replaced.
- :func:`check_output_location`: checked up front, creating nothing (so a command that fails early leaves no
  empty folder behind).
- :func:`strict_json`: JSON without NaN / Infinity tokens (non-finite floats become ``null``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import BadInputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _missing_parents(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, outermost first."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists() or candidate.is_symlink():
            break
        missing.append(candidate)
    return missing[::-1]


def check_output_location(path: str | os.PathLike, *, folder: bool = True, create_parents: bool = True,
                          option: str = "--out") -> Path:
    """Check up front, creating nothing, that ``path`` (a folder, or a file when ``folder`` is False) can be
    written: an existing ``path`` has the right kind, and its nearest existing ancestor is a writable folder.
    ``create_parents=False`` requires the parent folder of ``path`` to exist already."""
    path = Path(path)
    if path.exists():
        if folder and not path.is_dir():
            raise BadInputError(f"{option} {path} exists and is not a folder; choose another path")
        if not folder and path.is_dir():
            raise BadInputError(f"{option} {path} is a folder; pass a file path")
    if not create_parents and not path.parent.is_dir():
        raise BadInputError(f"{option} {path}: folder {path.parent} does not exist; create it first or choose "
                            "another path")
    anchor = path if path.is_dir() else path.parent
    while not anchor.exists() and anchor != anchor.parent:
        anchor = anchor.parent
    if not anchor.is_dir():
        raise BadInputError(f"{option} {path} is not writable: {anchor} is a file, not a folder; choose another path")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise BadInputError(f"{option} {path}: {anchor} is not writable; choose a writable location")
    return path


def _is_cwd_or_parent(folder: Path) -> bool:
    try:
        here, target = Path.cwd().resolve(), folder.resolve()
    except OSError:
        return False
    return here == target or target in here.parents


def claim_output_dir(path: str | os.PathLike, *, ours: Callable[[Path], bool], what: str, force: bool = False,
                     option: str = "--out") -> Path:
    """The rule for a folder a command replaces or fills with fixed names: it must not exist, be empty, or be
    ``what`` (``ours(path)`` is True); anything else is refused unless ``force``. The current folder and its
    parents are refused always (they cannot be replaced). Creates nothing."""
    folder = check_output_location(path, option=option)
    if _is_cwd_or_parent(folder):
        raise BadInputError(f"{option} {path} is the current folder (or contains it) and cannot be replaced; "
                            "choose a new or empty subfolder, e.g. --out out/run1")
    if not folder.is_dir() or not any(folder.iterdir()) or ours(folder):
        return folder
    if force:
        return folder
    raise BadInputError(f"{option} {folder} is not empty and is not {what}; choose a new or empty folder, or pass "
                        "--force to replace it")


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) and check we can write there, with a clear error otherwise."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(
            f"cannot create output folder {folder}: {exc.strerror or exc}; choose a writable location"
        ) from exc
    if not folder.is_dir():
        raise BadInputError(f"output path {folder} exists and is not a folder; choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BadInputError(f"output folder {folder} is not writable; choose a writable location")
    return folder


@contextlib.contextmanager
def _parents_made(folder: Path) -> Iterator[None]:
    """Create ``folder`` (and parents); if the block fails, remove the ones created here that are still empty."""
    made = _missing_parents(folder)
    ensure_writable_dir(folder)
    try:
        yield
    except BaseException:
        for created in reversed(made):
            with contextlib.suppress(OSError):
                created.rmdir()  # only empty folders: never anything another writer put there
        raise


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str = "", *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; move it to ``final`` only if the block succeeds.

    The file gets the permissions an ordinary ``open(..., "w")`` would (0666 minus the umask).
    ``overwrite=False`` never replaces an existing ``final``: :class:`FileExistsError` instead.
    """
    final = Path(final)
    with _parents_made(final.parent):
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix + ".tmp", dir=final.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            if tmp_path.exists():
                tmp_path.chmod(0o666 & ~_umask())  # mkstemp makes 0600
            if overwrite:
                os.replace(tmp_path, final)
            else:
                os.link(tmp_path, final)  # fails if final exists: never clobbers
                tmp_path.unlink()
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp_path.unlink()
            raise


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``final``; swap it into place only if the block succeeds.

    An existing ``final`` folder is replaced as a whole, so a reader never sees a mix of old and new files
    (callers decide whether it may be replaced: :func:`claim_output_dir`).
    """
    final = Path(final)
    if _is_cwd_or_parent(final):
        raise BadInputError(f"{final} is the current folder (or contains it) and cannot be replaced; choose a "
                            "new or empty subfolder")
    with _parents_made(final.parent):
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; the final folder gets ordinary permissions
        try:
            yield tmp
            if final.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
                old.rmdir()
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def strict_json(payload: Any, **kwargs) -> str:
    """``json.dumps`` that never writes NaN / Infinity (not JSON): non-finite floats become ``null``."""
    return json.dumps(_finite_or_none(payload), allow_nan=False, **kwargs)


def write_json_atomic(path: str | os.PathLike, payload: Any) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(strict_json(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return Path(path)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
