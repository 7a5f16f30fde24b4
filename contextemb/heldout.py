"""Held-out scoring: a text file's batches (tokenized once) and a model's summed loss, perplexity, bits/char."""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import torch

from .batching import sort_by_length
from .config import Direction
from .corpus import check_text_file, read_lines
from .errors import CorpusError
from .lm import LanguageModel
from .sequences import Batch, make_batches, sentence_sequences
from .tokenization import Tokenizer


class HeldOutScore(NamedTuple):
    nll: float  # summed negative log-likelihood, nats
    pieces: int  # target pieces scored (</s> or <s> included)
    characters: int  # characters of the text, one per line end included

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll / max(self.pieces, 1))

    @property
    def bits_per_char(self) -> float:
        """Comparable across tokenizers: the same text costs the same characters whatever the pieces."""
        return self.nll / math.log(2) / max(self.characters, 1)


def read_heldout_lines(path: Path, max_lines: Optional[int] = None) -> list[str]:
    """The first `max_lines` non-blank lines of a held-out file (all with None)."""
    lines = []
    for _, text in read_lines(check_text_file(path, "held-out file")):
        lines.append(text)
        if max_lines is not None and len(lines) >= max_lines:
            break
    if not lines:
        raise CorpusError(f"held-out file {path} holds no text")
    return lines


def evaluation_batches(path: Path, tokenizer: Tokenizer, direction: Direction, *, max_pieces: int, batch_tokens: int,
                       max_lines: Optional[int] = None) -> list[Batch]:
    """Held-out batches of whole lines of similar length (about batch_tokens pieces each), each batch carrying
    the characters of its lines, one per line end included: bits per character count the line break, as a
    character LM would."""
    lines = read_heldout_lines(path, max_lines)
    encoded = tokenizer.encode(lines)
    batches = []
    # one batch per group of lines whose pieces (with <s>, </s>) add up to about batch_tokens
    for group in _line_groups([len(ids) + 2 for ids in encoded], batch_tokens):
        sequences = [window for index in group for window in sentence_sequences(encoded[index], direction, max_pieces)]
        batch = make_batches(sequences, batch_tokens=10**12)[0]
        batches.append(batch._replace(num_chars=sum(len(lines[index]) + 1 for index in group)))
    return batches


def _line_groups(sizes: list[int], batch_tokens: int) -> list[list[int]]:
    """Lines in order of length, cut into groups once their sizes reach batch_tokens."""
    groups, group, total = [], [], 0
    for index in sort_by_length(sizes):
        group.append(index)
        total += sizes[index]
        if total >= batch_tokens:
            groups.append(group)
            group, total = [], 0
    if group:
        groups.append(group)
    return groups


def score_batches(model: LanguageModel, batches: Sequence[Batch]) -> HeldOutScore:
    """Sum the model's loss over held-out batches, in eval mode (no dropout), restoring the mode after."""
    was_training = model.training
    model.eval()
    nll, pieces, characters = 0.0, 0, 0
    device = next(model.parameters()).device
    with torch.inference_mode():
        for batch in batches:
            loss = model(batch.piece_ids.to(device), batch.targets.to(device))
            nll += float(loss.nll_sum)
            pieces += loss.count
            characters += batch.num_chars
    model.train(was_training)
    return HeldOutScore(nll, pieces, characters)
