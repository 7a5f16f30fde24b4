"""Length-bucketed training batches from the corpus stream, with a resumable reader position.

The corpus is never held in memory: lines are read one pool at a time from every corpus file by its weight
(about `bucket_batches` batches' worth of pieces; see contextemb.corpus.MixedReader), sorted by length into
batches, and the batches of a pool are shuffled with a generator seeded by (seed, pool). A position (each
file's offset, passes and credit at the pool's start, and the batches done) is enough to rebuild the same pool
after a restart and skip what was already trained on.

Batch layout for one sentence "A B C" (forward; the backward model reads the reversed list)::

    pieces   <s>  A   B   C   </s>
    inputs   <s>  A   B   C          <- piece_ids (batch, seq)
    targets  A    B   C   </s>       <- targets  (batch, seq), 0 = padding after the end
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, NamedTuple, Optional, Sequence

import numpy as np
import torch

from contextemb.corpus import (MixedReader, MixPosition, ReadStats, SourcePosition, check_text_file,  # noqa: F401
                               corpus_size, iter_text, log_read_stats, read_lines, split_long_line)
from contextemb.errors import CorpusError
from contextemb.tokenization import BOS_ID, EOS_ID, PAD_ID, Tokenizer

log = logging.getLogger(__name__)

BYTES_PER_PIECE = 5  # pool size estimate: Korean runs ~6 UTF-8 bytes a piece, English ~4


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
    """Where the stream is: `batches_done` batches of the pool that `mix` starts (see contextemb.corpus)."""

    mix: MixPosition = MixPosition()
    batches_done: int = 0

    def to_dict(self) -> dict:
        return {"mix": self.mix.to_dict(), "batches_done": self.batches_done}

    @classmethod
    def from_dict(cls, values: Mapping) -> "ReaderPosition":
        if "mix" not in values:  # written before several corpus files: {epoch, offset, pool, batches_done}
            log.warning("the checkpoint's reader position is of an older format; the stream resumes at its "
                        "byte offset, but pools are cut anew (not bit-for-bit the run it continues)")
            source = SourcePosition(offset=int(values.get("offset", 0)), passes=int(values.get("epoch", 0)))
            return cls(MixPosition(int(values.get("pool", 0)), (source,)), 0)
        return cls(MixPosition.from_dict(values["mix"]), int(values.get("batches_done", 0)))


class BatchStream:
    """Endless, resumable stream of training batches for one direction, over one or more corpus files.

    Iterating yields (batch, position after this batch). Each pool of lines (see MixedReader) is encoded, cut
    into sequences, sorted by length into batches, and its batches shuffled by a generator seeded with
    (seed, pool). `rank`/`world_size` give each of several processes every world_size-th batch of each pool
    (distributed training); a pool's batch count is cut to a multiple of world_size so all ranks take the same
    number of steps.
    """

    def __init__(self, corpus: MixedReader | Path, tokenizer: Tokenizer, direction: str, *, max_pieces: int,
                 batch_tokens: int, seed: int, bucket_batches: int = 50, start: ReaderPosition = ReaderPosition(),
                 rank: int = 0, world_size: int = 1):
        """corpus: a MixedReader (see open_corpus), or one text file read with pools of `bucket_batches`."""
        if not isinstance(corpus, MixedReader):
            corpus = open_corpus([check_text_file(corpus)], None, batch_tokens=batch_tokens,
                                 bucket_batches=bucket_batches)
        self.reader = corpus
        self.tokenizer = tokenizer
        self.direction = direction
        self.max_pieces = max_pieces
        self.batch_tokens = batch_tokens
        self.seed = seed
        self.start = start
        self.rank, self.world_size = rank, world_size

    @property
    def stats(self) -> ReadStats:
        return self.reader.stats

    def _sequences(self, lines: list[str]) -> list[list[int]]:
        parts = [part for line in lines for part in split_long_line(line)]
        sequences = []
        for piece_ids in self.tokenizer.encode(parts):
            sequences.extend(sentence_sequences(piece_ids, self.direction, self.max_pieces))
        return sequences

    def __iter__(self) -> Iterator[tuple[Batch, ReaderPosition]]:
        skip = self.start.batches_done
        for pool, mix, lines in self.reader.pools(self.start.mix):
            batches = make_batches(self._sequences(lines), self.batch_tokens)
            order = np.random.default_rng([self.seed, pool]).permutation(len(batches))
            usable = len(order) - len(order) % self.world_size
            for done in range(skip, usable // self.world_size):
                yield batches[order[done * self.world_size + self.rank]], ReaderPosition(mix, done + 1)
            skip = 0


def open_corpus(files: Sequence[Path], weights: Optional[Sequence[float]], *, batch_tokens: int,
                bucket_batches: int) -> MixedReader:
    """The mixed reader training uses: pools of about bucket_batches batches of batch_tokens pieces."""
    return MixedReader.from_files(files, weights, pool_bytes=batch_tokens * bucket_batches * BYTES_PER_PIECE)


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
