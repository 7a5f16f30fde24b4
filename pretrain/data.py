"""Streaming corpus reading and length-bucketed batches with a resumable reader position.

The corpus is never held in memory: lines are read one pool at a time (about `bucket_batches` batches'
worth of pieces), sorted by length into batches, and the batches of a pool are shuffled with a generator
seeded by (seed, epoch, pool). A position (epoch, byte offset of the pool, pool number, batches done) is
enough to rebuild the same pool after a restart and skip what was already trained on.

Batch layout for one sentence "A B C" (forward; the backward model reads the reversed list)::

    pieces   <s>  A   B   C   </s>
    inputs   <s>  A   B   C          <- piece_ids (batch, seq)
    targets  A    B   C   </s>       <- targets  (batch, seq), 0 = padding after the end
"""

from __future__ import annotations

import gzip
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, NamedTuple, Optional

import numpy as np
import torch

from contextemb.errors import CorpusError
from contextemb.tokenization import BOS_ID, EOS_ID, PAD_ID, Tokenizer, normalize_line

log = logging.getLogger(__name__)

LONG_LINE_CHARS = 20_000  # longer lines are cut into pieces of about this size before tokenization


def check_text_file(path: Path, what: str = "corpus") -> Path:
    """Refuse a path that is missing, a directory or unreadable, with a one-line reason."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{what} {path} does not exist")
    if path.is_dir():
        raise CorpusError(f"{what} {path} is a directory; give a text file (.txt or .txt.gz)")
    if not os.access(path, os.R_OK):
        raise CorpusError(f"{what} {path} is not readable")
    return path


def _open_binary(path: Path) -> BinaryIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


@dataclass
class ReadStats:
    """What the reader fixed or skipped, reported in the log."""

    lines: int = 0
    blank: int = 0
    invalid_utf8: int = 0
    nul: int = 0


def read_lines(path: Path, start_offset: int = 0, stats: Optional[ReadStats] = None) -> Iterator[tuple[int, str]]:
    """Yield (byte offset after the line, text) for every non-blank line, from `start_offset` on.

    .txt or .txt.gz; CRLF and a BOM are removed; invalid UTF-8 is replaced by U+FFFD and counted;
    NUL bytes are dropped and counted; text is NFC-normalised (decomposed Hangul jamo compose).
    """
    stats = stats if stats is not None else ReadStats()
    try:
        handle = _open_binary(path)
        with handle:
            if start_offset:
                handle.seek(start_offset)
            offset = start_offset
            for raw in handle:
                offset += len(raw)
                stats.lines += 1
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    text = raw.decode("utf-8", errors="replace")
                    stats.invalid_utf8 += 1
                if "\x00" in text:
                    stats.nul += 1
                text = normalize_line(text)
                if not text.strip():
                    stats.blank += 1
                    continue
                yield offset, text
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise CorpusError(f"cannot read {path}: {error}") from None


def iter_text(path: Path, stats: Optional[ReadStats] = None) -> Iterator[str]:
    """Every non-blank line of a text file, long lines cut at spaces into parts of about LONG_LINE_CHARS."""
    for _, text in read_lines(path, stats=stats):
        yield from split_long_line(text)


def split_long_line(text: str, limit: int = LONG_LINE_CHARS) -> list[str]:
    if len(text) <= limit:
        return [text]
    parts, start = [], 0
    while start < len(text):
        end = min(len(text), start + limit)
        if end < len(text):
            space = text.rfind(" ", start + limit // 2, end)
            end = space + 1 if space > 0 else end
        parts.append(text[start:end])
        start = end
    return parts


def log_read_stats(path: Path, stats: ReadStats) -> None:
    if stats.invalid_utf8:
        log.warning("%s: %d lines had invalid UTF-8, replaced with U+FFFD", path, stats.invalid_utf8)
    if stats.nul:
        log.warning("%s: %d lines had NUL bytes, removed", path, stats.nul)


def sentence_sequences(piece_ids: list[int], direction: str, max_pieces: int) -> list[list[int]]:
    """<s> + pieces + </s>, reversed for the backward model, cut into windows of max_pieces + 1 that overlap
    by one piece, so every target is predicted exactly once."""
    sequence = [BOS_ID] + piece_ids + [EOS_ID]
    if direction == "backward":
        sequence.reverse()  # reverse piece order, not characters: both directions share one tokenizer
    return [sequence[start:start + max_pieces + 1] for start in range(0, len(sequence) - 1, max_pieces)]


class Batch(NamedTuple):
    piece_ids: torch.Tensor  # (batch, seq) int64, padding 0 at the end
    targets: torch.Tensor  # (batch, seq) int64, padding 0
    num_targets: int  # real target pieces
    num_chars: int  # characters of the sentences these pieces came from (0 when unknown)


def make_batches(sequences: list[list[int]], batch_tokens: int) -> list[Batch]:
    """Sort sequences by length and group them so that rows x longest row <= batch_tokens."""
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    batches, group = [], []
    for index in order:
        candidate = group + [index]
        if group and len(candidate) * (len(sequences[index]) - 1) > batch_tokens:
            batches.append(_pad(sequences, group))
            candidate = [index]
        group = candidate
    if group:
        batches.append(_pad(sequences, group))
    return batches


def _pad(sequences: list[list[int]], group: list[int]) -> Batch:
    width = max(len(sequences[i]) for i in group) - 1
    ids = np.full((len(group), width), PAD_ID, dtype=np.int64)
    targets = np.full((len(group), width), PAD_ID, dtype=np.int64)
    for row, index in enumerate(group):
        sequence = sequences[index]
        ids[row, : len(sequence) - 1] = sequence[:-1]
        targets[row, : len(sequence) - 1] = sequence[1:]
    return Batch(torch.from_numpy(ids), torch.from_numpy(targets), int((targets != PAD_ID).sum()), 0)


@dataclass(frozen=True)
class ReaderPosition:
    """Where the stream is: `batches_done` batches of pool `pool` (which starts at byte `offset`) of `epoch`."""

    epoch: int = 0
    offset: int = 0
    pool: int = 0
    batches_done: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class BatchStream:
    """Endless, resumable stream of training batches for one direction.

    Iterating yields (batch, position after this batch). `rank`/`world_size` give each of several
    processes every world_size-th batch of each pool (distributed training); a pool's batch count is
    cut to a multiple of world_size so all ranks take the same number of steps.
    """

    def __init__(self, path: Path, tokenizer: Tokenizer, direction: str, *, max_pieces: int, batch_tokens: int,
                 bucket_batches: int, seed: int, start: ReaderPosition = ReaderPosition(),
                 rank: int = 0, world_size: int = 1):
        self.path = check_text_file(path)
        self.tokenizer = tokenizer
        self.direction = direction
        self.max_pieces = max_pieces
        self.batch_tokens = batch_tokens
        self.pool_tokens = batch_tokens * bucket_batches
        self.seed = seed
        self.start = start
        self.rank, self.world_size = rank, world_size
        self.stats = ReadStats()

    def _pools(self, offset: int, pool: int) -> Iterator[tuple[int, int, list[list[int]], int]]:
        """Yield (pool number, start offset, sequences, end offset) from `offset` to the end of the file."""
        lines: list[str] = []
        tokens, pool_start = 0, offset
        for end_offset, text in read_lines(self.path, offset, self.stats):
            lines.append(text)
            tokens += len(text) // 2 + 2  # cheap size estimate; exact counts come after encoding
            if tokens >= self.pool_tokens:
                yield pool, pool_start, self._sequences(lines), end_offset
                pool, pool_start, lines, tokens = pool + 1, end_offset, [], 0
        if lines:
            yield pool, pool_start, self._sequences(lines), None

    def _sequences(self, lines: list[str]) -> list[list[int]]:
        parts = [part for line in lines for part in split_long_line(line)]
        sequences = []
        for piece_ids in self.tokenizer.encode(parts):
            sequences.extend(sentence_sequences(piece_ids, self.direction, self.max_pieces))
        return sequences

    def __iter__(self) -> Iterator[tuple[Batch, ReaderPosition]]:
        epoch, offset, pool, skip = self.start.epoch, self.start.offset, self.start.pool, self.start.batches_done
        while True:
            produced = False
            for pool, pool_start, sequences, _ in self._pools(offset, pool):
                batches = make_batches(sequences, self.batch_tokens)
                order = np.random.default_rng([self.seed, epoch, pool]).permutation(len(batches))
                usable = len(order) - len(order) % self.world_size
                for done in range(skip, usable // self.world_size):
                    produced = True
                    batch = batches[order[done * self.world_size + self.rank]]
                    yield batch, ReaderPosition(epoch, pool_start, pool, done + 1)
                skip = 0
            if not produced and offset == 0:  # a whole pass from the start gave nothing
                raise CorpusError(f"{self.path} holds no text to train on (empty, or only blank lines)")
            epoch, offset, pool = epoch + 1, 0, 0


def corpus_size(path: Path) -> int:
    """Uncompressed size in bytes (one streaming pass for .gz), to turn reader offsets into epoch fractions."""
    path = check_text_file(path)
    if path.suffix != ".gz":
        return path.stat().st_size
    total = 0
    with gzip.open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            total += len(chunk)
    return total


def evaluation_batches(path: Path, tokenizer: Tokenizer, direction: str, *, max_pieces: int, batch_tokens: int,
                       max_lines: Optional[int] = None) -> list[Batch]:
    """Held-out batches (first `max_lines` non-blank lines), each batch carrying its character count."""
    batches = []
    lines = []
    for _, text in read_lines(check_text_file(path, "held-out file")):
        lines.append(text)
        if max_lines is not None and len(lines) >= max_lines:
            break
    if not lines:
        raise CorpusError(f"held-out file {path} holds no text")
    # group lines of similar length so padding stays small, keeping each batch's character count
    lines.sort(key=len)
    group: list[str] = []
    group_pieces = 0
    encoded = tokenizer.encode(lines)
    for text, piece_ids in zip(lines, encoded):
        group.append(text)
        group_pieces += len(piece_ids) + 2
        if group_pieces >= batch_tokens:
            batches.append(_eval_batch(group, tokenizer, direction, max_pieces))
            group, group_pieces = [], 0
    if group:
        batches.append(_eval_batch(group, tokenizer, direction, max_pieces))
    return batches


def _eval_batch(lines: list[str], tokenizer: Tokenizer, direction: str, max_pieces: int) -> Batch:
    sequences = []
    for piece_ids in tokenizer.encode(lines):
        sequences.extend(sentence_sequences(piece_ids, direction, max_pieces))
    batch = make_batches(sequences, batch_tokens=10**12)[0]
    # +1 per line for its end: bits per character count the line break, as a character LM would
    return batch._replace(num_chars=sum(len(line) + 1 for line in lines))
