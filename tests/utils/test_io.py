"""The writing rules in maskattn_trt/utils/io.py (issue 10, items 5, 7, 8, 9, 10, 13)."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from maskattn_trt.errors import BadInputError
from maskattn_trt.sampling.images import image_stem, save_image
from maskattn_trt.utils.io import atomic_dir, atomic_path, claim_output_dir, strict_json, write_json_atomic
from maskattn_trt.utils.progress import progress_enabled


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_files_and_folders_respect_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_json_atomic(tmp_path / "a.json", {"x": 1})
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o777 & ~umask


def test_a_failed_write_leaves_no_folders_it_created(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a" / "b" / "f.bin") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("dies")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "keep").mkdir()
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "keep" / "new" / "x"):
        raise RuntimeError("dies")
    assert [p.name for p in tmp_path.rglob("*")] == ["keep"]  # the folder that was there stays


def test_exclusive_write_never_clobbers(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(FileExistsError), atomic_path(target, overwrite=False) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_claim_output_dir_rules(tmp_path, monkeypatch):
    ours = lambda folder: (folder / "manifest.json").is_file()  # noqa: E731
    assert claim_output_dir(tmp_path / "new", ours=ours, what="x") == tmp_path / "new"
    assert not (tmp_path / "new").exists()  # creates nothing
    (tmp_path / "empty").mkdir()
    claim_output_dir(tmp_path / "empty", ours=ours, what="x")
    (tmp_path / "prev").mkdir()
    (tmp_path / "prev" / "manifest.json").write_text("{}")
    claim_output_dir(tmp_path / "prev", ours=ours, what="x")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes").write_text("x")
    with pytest.raises(BadInputError, match="not empty and is not a previous thing; .*--force"):
        claim_output_dir(tmp_path / "foreign", ours=ours, what="a previous thing")
    claim_output_dir(tmp_path / "foreign", ours=ours, what="x", force=True)
    monkeypatch.chdir(tmp_path / "empty")
    for path in (".", "..", str(tmp_path)):
        with pytest.raises(BadInputError, match="current folder"):
            claim_output_dir(path, ours=ours, what="x", force=True)
    with pytest.raises(BadInputError, match="current folder"), atomic_dir("."):
        pass


def test_strict_json_has_no_nan_tokens():
    text = strict_json({"a": float("nan"), "b": [float("inf"), -float("inf"), 1.5], "c": {"d": float("nan")}})
    assert json.loads(text) == {"a": None, "b": [None, None, 1.5], "c": {"d": None}}
    assert "NaN" not in text and "Infinity" not in text


def test_image_names_are_unique(tmp_path):
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    stems = [image_stem(0, p, 0) for p in ("猫", "犬", "!!!")]
    assert len(set(stems)) == 3  # prompts without ASCII letters no longer share a name
    first, _ = save_image(tmp_path, stems[0], image, {"run": 1})
    second, second_json = save_image(tmp_path, stems[0], image, {"run": 2})  # a repeated run into the folder
    assert first != second and second.name.endswith("-2.png")
    assert json.loads((tmp_path / f"{first.stem}.json").read_text()) == {"run": 1}
    assert json.loads(second_json.read_text()) == {"run": 2}


def test_progress_bars_only_on_a_terminal(monkeypatch):
    import io
    import sys

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not progress_enabled(True)
    assert not progress_enabled(False)
