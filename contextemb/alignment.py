"""From pieces to words and character spans: which pieces make up a word, and a pooling matrix over them.

Worked example (pieces of "삼성, 4연패" with their character spans)::

    text     삼 성 ,   4 연 패          words: "삼성," [0, 3)   "4연패" [4, 7)
    pieces   ▁삼성 [0,2)  , [2,3)  ▁4 [4,5)  연패 [5,7)
    pooling (mean)  [[.5, .5, 0, 0],
                     [0, 0, .5, .5]]      (words, pieces)
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple, Sequence

import numpy as np

from .errors import ConfigError, DataFormatError

Pool = Literal["mean", "first", "last"]
Unit = Literal["word", "piece"]
POOLS = ("mean", "first", "last")

_WORD = re.compile(r"\S+")


class Span(NamedTuple):
    char_start: int
    char_end: int


def word_spans(text: str) -> list[Span]:
    """Whitespace-separated words of `text` with their character spans."""
    return [Span(match.start(), match.end()) for match in _WORD.finditer(text)]


def overlapping_pieces(char_start: Sequence[int], char_end: Sequence[int], span: Span) -> list[int]:
    """Indices of the pieces whose character span overlaps `span` (in order)."""
    return [i for i, (start, end) in enumerate(zip(char_start, char_end))
            if start < span.char_end and end > span.char_start]


def nearest_piece(char_start: Sequence[int], span: Span) -> int:
    """The piece that starts closest to `span`: for a word whose characters the tokenizer's normaliser
    removed (a lone zero-width space, say) and that therefore has no piece of its own."""
    return int(np.argmin([abs(start - span.char_start) for start in char_start]))


def pooling_matrix(groups: Sequence[Sequence[int]], num_pieces: int, pool: Pool = "mean") -> np.ndarray:
    """(len(groups), num_pieces) float32 weights: row k pools the pieces in groups[k]."""
    if pool not in POOLS:
        raise ConfigError(f"pool must be one of {POOLS}, got {pool!r}")
    matrix = np.zeros((len(groups), num_pieces), dtype=np.float32)
    for row, group in enumerate(groups):
        if pool == "mean":
            matrix[row, list(group)] = 1.0 / len(group)
        else:
            matrix[row, group[0] if pool == "first" else group[-1]] = 1.0
    return matrix


def word_pooling(text: str, char_start: Sequence[int], char_end: Sequence[int],
                 pool: Pool = "mean") -> tuple[list[Span], np.ndarray]:
    """The words of `text` and their (words, pieces) pooling matrix: pooling_matrix(word_groups(...)), the
    same weights, found with array comparisons instead of a Python loop over every (word, piece) pair."""
    if pool not in POOLS:
        raise ConfigError(f"pool must be one of {POOLS}, got {pool!r}")
    spans = word_spans(text)
    starts, ends = np.asarray(char_start, dtype=np.int64), np.asarray(char_end, dtype=np.int64)
    bounds = np.array(spans, dtype=np.int64).reshape(len(spans), 2)  # (words, [start, end))
    overlaps = (starts[None, :] < bounds[:, 1:]) & (ends[None, :] > bounds[:, :1])  # (words, pieces)
    lonely = ~overlaps.any(axis=1)  # words whose characters no piece covers: the nearest piece instead
    if lonely.any():
        nearest = np.abs(starts[None, :] - bounds[lonely, :1]).argmin(axis=1)
        overlaps[np.flatnonzero(lonely), nearest] = True
    if pool == "mean":
        counts = overlaps.sum(axis=1, keepdims=True)
        return spans, np.where(overlaps, (1.0 / np.maximum(counts, 1)).astype(np.float32), np.float32(0))
    chosen = overlaps.argmax(axis=1) if pool == "first" else overlaps.shape[1] - 1 - overlaps[:, ::-1].argmax(axis=1)
    matrix = np.zeros(overlaps.shape, dtype=np.float32)
    matrix[np.arange(len(spans)), chosen] = 1.0
    return spans, matrix


def word_groups(text: str, char_start: Sequence[int], char_end: Sequence[int]) -> tuple[list[Span], list[list[int]]]:
    """The words of `text` and, for each, the indices of its pieces (never empty when the text has pieces)."""
    spans = word_spans(text)
    groups = []
    for span in spans:
        group = overlapping_pieces(char_start, char_end, span)
        groups.append(group or [nearest_piece(char_start, span)])
    return spans, groups


def check_span(text: str, start: int, end: int) -> Span:
    """Validate a character span of `text`; ValueError names what is wrong."""
    if isinstance(start, bool) or isinstance(end, bool) or not isinstance(start, (int, np.integer)) \
            or not isinstance(end, (int, np.integer)):
        raise DataFormatError(f"span offsets must be integers, got {start!r}, {end!r}")
    if not 0 <= start < end <= len(text):
        raise DataFormatError(f"span [{start}, {end}) is outside the text of {len(text)} characters "
                         f"(need 0 <= start < end <= {len(text)})")
    if not text[start:end].strip():
        raise DataFormatError(f"span [{start}, {end}) covers only whitespace")
    return Span(int(start), int(end))
