"""Hold out a fixed slice of a corpus: every line whose hash falls in one of `every` buckets goes to held-out.

    split_heldout([wiki.txt.gz, law.txt.gz], out_dir, every=200)
    -> out_dir/train/wiki.txt, out_dir/train/law.txt, out_dir/heldout.txt

The choice depends on the line's text only (SHA-1), so it is the same on every machine and in every order, and
a line repeated in several files is held out everywhere. Written atomically, file by file.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import NamedTuple, Sequence

from contextemb.corpus import read_lines, source_name
from contextemb.errors import ConfigError
from contextemb.io import atomic_write

log = logging.getLogger(__name__)


class HeldOutSplit(NamedTuple):
    train_files: list[Path]
    heldout_file: Path
    train_lines: int
    heldout_lines: int


def is_heldout(text: str, every: int) -> bool:
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big") % every == 0


def split_heldout(files: Sequence[Path], out_dir: Path, every: int = 200) -> HeldOutSplit:
    """Write each file's kept lines to out_dir/train/<name>.txt and the held-out ones to out_dir/heldout.txt."""
    if every < 2:
        raise ConfigError(f"every must be at least 2, got {every}")
    out_dir = Path(out_dir)
    (out_dir / "train").mkdir(parents=True, exist_ok=True)
    heldout: list[str] = []
    train_files, kept = [], 0
    for path in files:
        lines = [text for _, text in read_lines(Path(path))]
        train = [text for text in lines if not is_heldout(text, every)]
        heldout.extend(text for text in lines if is_heldout(text, every))
        target = out_dir / "train" / f"{source_name(Path(path))}.txt"
        atomic_write(target, lambda tmp, train=train: tmp.write_text("".join(t + "\n" for t in train), encoding="utf-8"))
        train_files.append(target)
        kept += len(train)
        log.info("%s: %d lines kept, %d held out", path, len(train), len(lines) - len(train))
    heldout_file = out_dir / "heldout.txt"
    atomic_write(heldout_file, lambda tmp: tmp.write_text("".join(t + "\n" for t in heldout), encoding="utf-8"))
    return HeldOutSplit(train_files, heldout_file, kept, len(heldout))
