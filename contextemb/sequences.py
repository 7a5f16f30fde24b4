"""Language-model sequences and their batches: <s> pieces </s>, cut into windows, padded into (batch, seq).

Batch layout for one sentence "A B C" (forward; the backward model reads the reversed list)::

    pieces   <s>  A   B   C   </s>
    inputs   <s>  A   B   C          <- piece_ids (batch, seq)
    targets  A    B   C   </s>       <- targets  (batch, seq), 0 = padding after the end
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .batching import length_batches, pad_ids
from .config import Direction
from .tokenization import BOS_ID, EOS_ID, PAD_ID


def sentence_sequences(piece_ids: list[int], direction: Direction, max_pieces: int) -> list[list[int]]:
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
    groups = length_batches([len(sequence) - 1 for sequence in sequences], max_tokens=batch_tokens)
    return [pad_batch([sequences[index] for index in group]) for group in groups]


def pad_batch(sequences: list[list[int]]) -> Batch:
    """Inputs are each sequence but its last piece, targets each but its first; both padded with PAD_ID."""
    piece_ids = pad_ids([sequence[:-1] for sequence in sequences], PAD_ID)
    targets = pad_ids([sequence[1:] for sequence in sequences], PAD_ID)
    return Batch(piece_ids, targets, int((targets != PAD_ID).sum()), 0)
