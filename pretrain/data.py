"""Length-bucketed training batches from the corpus stream, with a resumable reader position.

The corpus is never held in memory: lines are read one pool at a time from every corpus file by its weight
(about `bucket_batches` batches' worth of pieces; see contextemb.corpus.MixedReader), sorted by length into
batches, and the batches of a pool are shuffled with a generator seeded by (seed, pool). A position (each
file's offset, passes and credit at the pool's start, and the batches done) is enough to rebuild the same pool
after a restart and skip what was already trained on.

Sequences and their batch layout: contextemb/sequences.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence

import numpy as np

from contextemb.config import Direction
from contextemb.corpus import MixedReader, MixPosition, ReadStats, SourcePosition, check_text_file, split_long_line
from contextemb.sequences import Batch, make_batches, sentence_sequences
from contextemb.tokenization import Tokenizer

log = logging.getLogger(__name__)

BYTES_PER_PIECE = 5  # pool size estimate: Korean runs ~6 UTF-8 bytes a piece, English ~4


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

    def __init__(self, corpus: MixedReader | Path, tokenizer: Tokenizer, direction: Direction, *, max_pieces: int,
                 batch_tokens: int, seed: int, bucket_batches: int = 50, start: ReaderPosition = ReaderPosition(),
                 rank: int = 0, world_size: int = 1, subword_sampling: float = 0.0):
        """corpus: a MixedReader (see open_corpus), or one text file read with pools of `bucket_batches`.
        subword_sampling: 0, or the alpha with which each pool's segmentations are sampled (seeded by seed and
        pool: the same pieces within one process, but a resume in a new process draws other segmentations, so
        it is not bit-for-bit the unbroken run; see Tokenizer.encode_sampled)."""
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
        self.subword_sampling = subword_sampling

    @property
    def stats(self) -> ReadStats:
        return self.reader.stats

    def _sequences(self, lines: list[str], pool: int) -> list[list[int]]:
        parts = [part for line in lines for part in split_long_line(line)]
        if self.subword_sampling:
            seed = int(np.random.SeedSequence([self.seed, pool]).generate_state(1)[0])
            encoded = self.tokenizer.encode_sampled(parts, self.subword_sampling, seed)
        else:
            encoded = self.tokenizer.encode(parts)
        sequences = []
        for piece_ids in encoded:
            sequences.extend(sentence_sequences(piece_ids, self.direction, self.max_pieces))
        return sequences

    def __iter__(self) -> Iterator[tuple[Batch, ReaderPosition]]:
        skip = self.start.batches_done
        for pool, mix, lines in self.reader.pools(self.start.mix):
            batches = make_batches(self._sequences(lines, pool), self.batch_tokens)
            order = np.random.default_rng([self.seed, pool]).permutation(len(batches))
            usable = len(order) - len(order) % self.world_size
            for done in range(skip, usable // self.world_size):
                yield batches[order[done * self.world_size + self.rank]], ReaderPosition(mix, done + 1)
            skip = 0


def open_corpus(files: Sequence[Path], weights: Optional[Sequence[float]], *, batch_tokens: int,
                bucket_batches: int) -> MixedReader:
    """The mixed reader training uses: pools of about bucket_batches batches of batch_tokens pieces."""
    return MixedReader.from_files(files, weights, pool_bytes=batch_tokens * bucket_batches * BYTES_PER_PIECE)
