"""Files the toolkit writes get the permissions of any file written here: a model trained by one user can be read
by the others it is shared with (safetensors >= 0.8 alone writes 0o600 whatever the umask)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import torch

from contextemb.io import atomic_write_text, save_tensors


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_file_of_a_trained_model_has_an_ordinary_files_mode(tiny_model_dir, tmp_path):
    ordinary = tmp_path / "ordinary"
    ordinary.touch()  # the mode this process's umask gives a new file, as the model's files were written
    files = [path for path in tiny_model_dir.rglob("*") if path.is_file() and path.name != ".lock"]
    assert any(path.suffix == ".safetensors" for path in files)
    assert {path.relative_to(tiny_model_dir).as_posix(): _mode(path) for path in files} == \
        {path.relative_to(tiny_model_dir).as_posix(): _mode(ordinary) for path in files}


def test_a_new_file_follows_the_umask_and_a_rewritten_one_keeps_its_mode(tmp_path):
    weights, text = tmp_path / "weights.safetensors", tmp_path / "config.json"
    previous = os.umask(0o027)
    try:
        save_tensors(weights, {"w": torch.zeros(3)})
        atomic_write_text(text, "{}")
    finally:
        os.umask(previous)
    assert _mode(weights) == _mode(text) == 0o640
    os.chmod(weights, 0o604)
    save_tensors(weights, {"w": torch.ones(3)})
    assert _mode(weights) == 0o604
    assert not (tmp_path / "weights.safetensors.tmp").exists()
