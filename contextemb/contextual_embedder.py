"""ContextualEmbedder: the biLM as an nn.Module for a downstream model, with learned scalar mixes (as ELMo's
`Elmo` module): texts in, (batch, words, dim) tensors out, one per requested representation.

    layer = ContextualEmbedder("ko-general", num_output_representations=1, dropout=0.5)
    output = layer(["영화 정말 재밌다", "시간 아깝다"])
    output.representations[0]   # (batch, words, dim), float
    output.mask                 # (batch, words) bool, True on real words

The biLM is frozen (no gradients, eval mode) unless requires_grad=True; only the mixes then learn.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence, Union

import torch
from torch import Tensor, nn

from .alignment import Pool, Unit
from .batching import pad_vectors
from .embedder import BATCH_TEXTS, Embedder, load
from .encoders import CharCNN
from .scalar_mix import ScalarMix


class ContextualOutput(NamedTuple):
    representations: list[Tensor]  # num_output_representations x (batch, words, dim)
    mask: Tensor  # (batch, words) bool


class ContextualEmbedder(nn.Module):
    def __init__(self, model: Union[str, Path, Embedder], num_output_representations: int = 1,
                 dropout: float = 0.5, requires_grad: bool = False, layer_norm: bool = False,
                 unit: Unit = "word", pool: Pool = "mean", batch_size: int = BATCH_TEXTS):
        super().__init__()
        self.embedder = model if isinstance(model, Embedder) else load(model)
        self.bilm = self.embedder.bilm  # registered, so .to(device) and state_dict() include it
        self.requires_grad = requires_grad
        for parameter in self.bilm.parameters():
            parameter.requires_grad_(requires_grad)
        if requires_grad:  # the char-CNN's inference cache would go stale as the weights learn
            for module in self.bilm.modules():
                if isinstance(module, CharCNN):
                    module.cache = None
        self.scalar_mixes = nn.ModuleList(ScalarMix(self.embedder.num_layers, layer_norm=layer_norm)
                                          for _ in range(num_output_representations))
        self.dropout = nn.Dropout(dropout)
        self.unit, self.pool, self.batch_size = unit, pool, batch_size

    @property
    def output_dim(self) -> int:
        return self.embedder.dim

    def train(self, mode: bool = True) -> "ContextualEmbedder":
        super().train(mode)
        if not self.requires_grad:
            self.bilm.eval()  # a frozen biLM never runs its own dropout
        return self

    def forward(self, texts: Sequence[str]) -> ContextualOutput:
        """texts: batch of strings -> representations (batch, words, dim) each, mask (batch, words)."""
        with torch.set_grad_enabled(self.requires_grad and torch.is_grad_enabled()):
            encodings = [self.embedder.encode(text) for text in texts]
            piece_vectors = self.embedder.piece_vectors(encodings, self.batch_size)
            units = [result.vectors for result in
                     self.embedder.all_word_vectors(texts, encodings, piece_vectors, self.unit, self.pool)]
        device = self.embedder.device
        if not units:  # an empty batch
            empty = torch.zeros(0, 0, self.output_dim, device=device)
            no_words = torch.zeros(0, 0, dtype=torch.bool, device=device)
            return ContextualOutput([empty] * len(self.scalar_mixes), no_words)
        stacked, mask = pad_vectors(units)  # (layers, batch, words, dim), (batch, words)
        representations = [self.dropout(mix(stacked, mask) * mask.unsqueeze(-1)) for mix in self.scalar_mixes]
        return ContextualOutput(representations, mask)

    def layer_weights(self) -> list[list[float]]:
        """The softmax layer weights each mix has learned."""
        return [mix.weights.detach().cpu().tolist() for mix in self.scalar_mixes]
