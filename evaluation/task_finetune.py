"""Task fine-tuning: the classifier trains the biLM's LSTMs with it, instead of reading frozen vectors.

ELMo's own recipe freezes the biLM (contextemb.evaluation.classify). This is the step past it that ULMFiT
(Howard and Ruder, 2018) takes: the same classifier, but each batch runs the biLM with gradients, so its LSTM
layers adapt to the task at a learning rate of their own (lower than the classifier's, warmed up from zero so
that the untrained classifier's first gradients do not wreck them). The token layer stays frozen: a char-CNN
keeps looking its vectors up in its cache, and a subword table is left as it was.

    texts -> pieces + (words, pieces) pooling matrices          once, `text_pieces`
    batch -> biLM (with gradients) -> mean over each word's pieces -> (layers, batch, words, dim) -> classifier

Slow on a CPU: about 136 NSMC reviews a second in training (2 cores, float32, batches of 64 sorted by pieces;
docs/RESULTS.md), against about a thousand for a classifier over precomputed frozen vectors.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from contextemb.alignment import word_pooling
from contextemb.bilm import BiLM
from contextemb.embedder import Embedder
from contextemb.errors import ConfigError


@dataclass(frozen=True)
class TextPieces:
    """Each text's piece ids and its (words, pieces) float32 mean-pooling matrix; a text without pieces has
    no words here (as with frozen vectors). num_layers and dim: the biLM's, for the classifier's shapes."""

    piece_ids: Sequence[list[int]]
    pooling: Sequence[np.ndarray]
    num_layers: int
    dim: int

    def __len__(self) -> int:
        return len(self.piece_ids)

    def num_words(self, index: int) -> int:
        return self.pooling[index].shape[0]

    def subset(self, indices: Sequence[int]) -> "TextPieces":
        return TextPieces([self.piece_ids[i] for i in indices], [self.pooling[i] for i in indices],
                          self.num_layers, self.dim)

    def batch(self, indices: Sequence[int], width: int) -> "PieceBatch":
        """The texts `indices` for the biLM; width: the classifier batch's words per row (>= every text's)."""
        longest = max(1, max(len(self.piece_ids[i]) for i in indices))
        matrix = np.zeros((len(indices), width, longest), dtype=np.float32)
        for row, index in enumerate(indices):
            pooling = self.pooling[index]
            matrix[row, :pooling.shape[0], :pooling.shape[1]] = pooling
        return PieceBatch([self.piece_ids[i] for i in indices], matrix)


class PieceBatch(NamedTuple):
    """piece_ids: per row, its pieces (possibly none); pooling: (rows, words, longest) float32."""

    piece_ids: list[list[int]]
    pooling: np.ndarray


def text_pieces(embedder: Embedder, texts: Sequence[str]) -> TextPieces:
    """Tokenise `texts` once, with each text's word pooling (the words of `alignment.word_spans`, mean of pieces)."""
    piece_ids, pooling = [], []
    for text in texts:
        encoding = embedder.encode(text)
        if encoding.piece_ids:
            _, matrix = word_pooling(text, encoding.char_start, encoding.char_end, "mean")
        else:
            matrix = np.zeros((0, 0), dtype=np.float32)
        piece_ids.append(list(encoding.piece_ids))
        pooling.append(matrix)
    return TextPieces(piece_ids, pooling, embedder.num_layers, embedder.dim)


def check_trainable(bilm: BiLM) -> None:
    """ConfigError unless both directions' LSTMs are float32 nn.LSTMs: bf16 and int8 inference copies
    (contextemb.quantization) cannot learn; load the model with precision float32."""
    for model in (bilm.forward_lm, bilm.backward_lm):
        lstm = model.lstms[0]
        if model.lstm_dtype is not None or not isinstance(lstm, nn.LSTM) or lstm.weight_ih_l0.dtype != torch.float32:
            raise ConfigError("fine-tuning the biLM needs its float32 weights: load the model with precision float32")


def trainable_copy(bilm: BiLM) -> BiLM:
    """A copy of `bilm` whose LSTM layers learn and whose token encoders stay frozen (a char-CNN keeps its cache).

    The embedder's own biLM is never changed. Refuses what check_trainable refuses."""
    check_trainable(bilm)
    copied = copy.deepcopy(bilm)
    for model in (copied.forward_lm, copied.backward_lm):
        for parameter in model.encoder.parameters():
            parameter.requires_grad_(False)
        for parameter in model.softmax.parameters():  # unused by the classifier
            parameter.requires_grad_(False)
        if hasattr(model.encoder, "build_cache") and model.encoder.cache is None:
            model.encoder.build_cache()
    return copied


def lstm_parameters(bilm: BiLM) -> list[nn.Parameter]:
    """The parameters task fine-tuning trains: every LSTM layer of both directions."""
    return [parameter for model in (bilm.forward_lm, bilm.backward_lm) for parameter in model.lstms.parameters()]


def word_layers(bilm: BiLM, batch: PieceBatch, num_layers: int, dim: int) -> Tensor:
    """(layers, rows, words, dim) float32 word vectors of `batch`, with gradients where the caller has them;
    rows without pieces get zeros."""
    rows = [row for row, ids in enumerate(batch.piece_ids) if ids]
    vectors = torch.zeros(num_layers, len(batch.piece_ids), batch.pooling.shape[1], dim)
    if not rows:
        return vectors
    if len(rows) == len(batch.piece_ids):
        return bilm.pooled_vectors(batch.piece_ids, batch.pooling)
    longest = max(len(batch.piece_ids[row]) for row in rows)
    pooled = bilm.pooled_vectors([batch.piece_ids[row] for row in rows], batch.pooling[rows, :, :longest])
    return vectors.index_put((torch.arange(num_layers)[:, None], torch.tensor(rows)[None, :]), pooled)


class FineTunedClassifier(nn.Module):
    """A classifier (evaluation.classify.SequenceClassifier) over a biLM that learns with it: each batch's
    contextual word vectors come from the biLM, run on its PieceBatch, instead of frozen arrays.

    While bilm_frozen is set (ULMFiT's gradual unfreezing: the classifier learns first), the biLM runs as in
    inference, without dropout or gradients, so the classifier sees exactly the frozen recipe's vectors."""

    def __init__(self, bilm: BiLM, head: nn.Module):
        super().__init__()
        self.bilm = bilm
        self.head = head
        self.bilm_frozen = False

    def freeze_bilm(self, frozen: bool) -> None:
        self.bilm_frozen = frozen
        self.train(self.training)

    def train(self, mode: bool = True) -> "FineTunedClassifier":
        super().train(mode)
        if self.bilm_frozen:
            self.bilm.eval()
        return self

    def forward(self, batch) -> Tensor:
        """batch: evaluation.classify.Batch with pieces -> (batch, classes) logits."""
        with torch.no_grad() if self.bilm_frozen else contextlib.nullcontext():
            contextual = word_layers(self.bilm, batch.pieces, self.bilm.num_layers, self.bilm.dim)
        return self.head(batch._replace(contextual=contextual))


def warmup_schedule(optimizer: torch.optim.Optimizer, bilm_group: int, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The biLM's learning rate (param group bilm_group) rises linearly from 0 over `steps` optimizer steps; the
    other groups keep theirs."""
    if steps < 0:
        raise ConfigError(f"warm-up steps must be >= 0, got {steps}")
    ramp = lambda step: min(1.0, (step + 1) / steps) if steps else 1.0  # noqa: E731
    keep = lambda step: 1.0  # noqa: E731
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, [ramp if group == bilm_group else keep for group in range(len(optimizer.param_groups))])
