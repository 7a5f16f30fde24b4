"""Files on disk: atomic writes, safetensors tensors, the model directory layout, metrics.jsonl.

A model directory holds::

    config.json            versioned LMConfig + TrainConfig (contextemb.config)
    tokenizer.model        the sentencepiece model
    forward.safetensors    forward LM weights
    backward.safetensors   backward LM weights
    metrics.jsonl          one JSON object per training report
    checkpoints/           forward.safetensors, backward.safetensors: resumable training state

Nothing here unpickles: tensors are safetensors, everything else is JSON or text.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import Direction
from .errors import ConfigError, ModelFormatError

TOKENIZER_FILE = "tokenizer.model"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"
DIRECTIONS = ("forward", "backward")


def weights_path(model_dir: Path, direction: Direction) -> Path:
    return Path(model_dir) / f"{direction}.safetensors"


def checkpoint_path(model_dir: Path, direction: Direction) -> Path:
    return Path(model_dir) / CHECKPOINT_DIR / f"{direction}.safetensors"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mode_for(path: Path, tmp: Path) -> int:
    """The permission bits `path` should end with: its own if it exists, else those of a new file here (created as
    `tmp`, 0o666 less the umask; reading the umask itself would change it for every thread). safetensors >= 0.8
    writes through a temporary file of its own, always 0o600 (safetensors issue #782), so without this a model
    would be readable by its owner alone."""
    if path.exists():
        return path.stat().st_mode & 0o7777
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        return os.fstat(fd).st_mode & 0o7777
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write `path` through `write(tmp_path)`, then fsync and rename, so a crash leaves the old file or the new one.

    The temporary file sits beside the target (same file system, so os.replace is atomic). The file gets the
    permissions an ordinary write would give it: an existing file's mode, else 0o666 less the umask.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; give a file path to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        mode = _mode_for(path, tmp)
        write(tmp)
        os.chmod(tmp, mode)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def check_new_directory(path: Path) -> None:
    """ConfigError unless `path` is free for a new directory: absent, or an empty directory."""
    path = Path(path)
    if path.exists() and not (path.is_dir() and not any(path.iterdir())):
        raise ConfigError(f"{path} exists and is not an empty directory: choose a new path")


@contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Fill a new directory as a whole: the block writes into a temporary directory beside `path`, which then
    becomes `path` in one rename, so a crash leaves no half-written `path`; on an exception it is removed.
    `path` must be free (check_new_directory)."""
    import shutil

    path = Path(path)
    check_new_directory(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        for file in tmp.rglob("*"):
            if file.is_file():
                fd = os.open(file, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        if path.is_dir():
            path.rmdir()  # empty (checked): os.replace cannot put a directory over it on every system
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(path.parent)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomically save tensors (made contiguous, on the CPU) as safetensors with string metadata."""
    prepared = {name: tensor.detach().to("cpu").contiguous() for name, tensor in tensors.items()}
    atomic_write(path, lambda tmp: save_file(prepared, str(tmp), metadata=metadata))


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file; anything else (a pickle, a truncated file) is refused, never unpickled."""
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path} not found")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelFormatError(f"{path} is not a readable safetensors file ({error}); it was not unpickled") from None
    return tensors, metadata


def append_jsonl(path: Path, record: dict) -> None:
    """Append one JSON line with a single write(2), so two processes appending never interleave a line."""
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


@contextmanager
def directory_lock(directory: Path, purpose: str = "pretrain"):
    """Hold an exclusive lock on `directory/.lock` while the block runs.

    flock is released by the kernel when the process dies, so a killed run leaves no stale lock.
    """
    import fcntl

    from .errors import TrainingError

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    handle = open(directory / ".lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise TrainingError(f"{directory} is in use by another {purpose} run; wait for it or choose another --out") from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
