"""Length batching and padding, shared by embedding, pretraining and evaluation.

Rows of similar length go together, so a batch pads little. For row lengths [5, 2, 9, 3] and at most
12 padded tokens a batch::

    sorted by length     1 (2)  3 (3)  0 (5)  2 (9)
    batches              [1, 3]        2 rows x 3 = 6 tokens; adding row 0 would make 3 x 5 = 15
                         [0]           1 x 5; with row 2, 2 x 9 = 18
                         [2]

    pad_ids([[7, 8, 9], [4]], pad_value=0)  ->  [[7, 8, 9],
                                                 [4, 0, 0]]   (2, 3) int64
"""

from __future__ import annotations

from itertools import chain
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor


def sort_by_length(lengths: Sequence[int]) -> list[int]:
    """Indices of `lengths`, shortest first; equal lengths keep their order."""
    return sorted(range(len(lengths)), key=lengths.__getitem__)


def length_batches(lengths: Sequence[int], max_rows: Optional[int] = None,
                   max_tokens: Optional[int] = None) -> list[list[int]]:
    """Indices grouped into batches, shortest first (see the module docstring).

    lengths: each row's width once built (count any <s> and </s> in it). A batch holds at most max_rows
    rows and, padded to its longest row, at most max_tokens tokens (rows x longest width); None is no limit.
    A row wider than max_tokens gets a batch of its own.
    """
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    batches: list[list[int]] = []
    batch: list[int] = []
    for index in sort_by_length(lengths):
        width = lengths[index]  # sorted, so this row is the batch's widest
        full = (max_rows is not None and len(batch) >= max_rows) or \
            (max_tokens is not None and (len(batch) + 1) * width > max_tokens)
        if batch and full:
            batches.append(batch)
            batch = []
        batch.append(index)
    if batch:
        batches.append(batch)
    return batches


def pad_ids(rows: Sequence[Sequence[int]], pad_value: int, width: Optional[int] = None) -> Tensor:
    """(len(rows), width) int64: row i holds rows[i], then pad_value. width defaults to the longest row."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    longest = int(lengths.max(initial=0))
    width = longest if width is None else width
    if width < longest:
        raise ValueError(f"width {width} is narrower than the longest row ({longest})")
    padded = np.full((len(rows), width), pad_value, dtype=np.int64)
    real = np.arange(width) < lengths[:, None]  # (rows, width) True on each row's own ids, row-major
    padded[real] = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
    return torch.from_numpy(padded)


def pad_vectors(vectors: Sequence[Tensor], min_width: int = 0) -> tuple[Tensor, Tensor]:
    """Stack texts' vectors, padding with zeros: vectors[i] is (layers, words_i, dim).

    Returns (layers, batch, width, dim) and a (batch, width) bool mask, True on real words; width is the
    most words, at least min_width. Gradients flow back to `vectors`. Needs at least one text.
    """
    if not vectors:
        raise ValueError("pad_vectors needs at least one text")
    layers, _, dim = vectors[0].shape
    width = max(min_width, max(v.shape[1] for v in vectors))
    first = vectors[0]
    padded = first.new_zeros(layers, len(vectors), width, dim)
    mask = torch.zeros(len(vectors), width, dtype=torch.bool, device=first.device)
    for row, text_vectors in enumerate(vectors):
        padded[:, row, :text_vectors.shape[1]] = text_vectors
        mask[row, :text_vectors.shape[1]] = True
    return padded, mask
