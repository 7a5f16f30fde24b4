"""Token encoders: ELMo's character CNN with highway layers, and a plain subword embedding table.

Both map piece ids (batch, seq) to vectors (batch, seq, projection); layer 0 of the embeddings is their output.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .config import LMConfig


class Highway(nn.Module):
    """Highway layers (Srivastava et al., 2015): y = g * x + (1 - g) * relu(W_h x), g = sigmoid(W_g x).

    The gate bias starts at 1 so that each layer at first mostly carries its input through
    (as AllenNLP's Highway does): gradients reach the convolutions from the first step.
    """

    def __init__(self, dim: int, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, 2 * dim) for _ in range(num_layers))
        for layer in self.layers:
            layer.bias.data[dim:].fill_(1.0)

    def forward(self, inputs: Tensor) -> Tensor:
        """inputs: (n, dim) -> (n, dim)."""
        current = inputs
        for layer in self.layers:
            transform, gate = layer(current).chunk(2, dim=-1)
            gate = torch.sigmoid(gate)
            current = gate * current + (1 - gate) * F.relu(transform)
        return current


class CharCNN(nn.Module):
    """ELMo's character encoder: char embeddings -> convolutions of widths 1..N, max-pooled -> highway -> projection.

    The input is a fixed table of character ids per piece, so the CNN output depends only on the piece id:
    forward() runs it once per distinct piece in the batch and gathers, which is exact and much cheaper
    than running it per position (a batch of 2,048 positions holds a few hundred distinct pieces).

    The convolutions also skip most of the padding, exactly: every window that lies wholly in padding holds
    the same characters, so it gives each filter the same value whatever the piece.
    Cutting the rows to the longest piece of the batch plus the widest filter keeps every window that
    touches a real character and, for every piece that had one, at least one all-padding window, so each
    max-pool sees the same set of values as at full width (tested against the full width).
    """

    def __init__(self, config: LMConfig, char_table: Tensor, num_chars: int):
        super().__init__()
        # (vocab, max_chars) int32: character ids of each piece, from tokenization.char_table
        self.register_buffer("char_table", char_table.to(torch.int32), persistent=True)
        # characters before the padding, per piece (padding is id 0 and only ever at the end of a row)
        self.register_buffer("char_lengths", (char_table != 0).sum(dim=1).to(torch.int32), persistent=False)
        self.widest_filter = max(width for width, _ in config.filters)
        self.char_embedding = nn.Embedding(num_chars, config.char_dim, padding_idx=0)
        self.convolutions = nn.ModuleList(
            nn.Conv1d(config.char_dim, count, kernel_size=width) for width, count in config.filters
        )
        width = sum(count for _, count in config.filters)
        self.highway = Highway(width, config.highway_layers)
        self.projection = nn.Linear(width, config.projection)

    def encode_pieces(self, piece_ids: Tensor, trim: bool = True, by_length: bool = False) -> Tensor:
        """piece_ids: (n,) int64 distinct ids -> (n, projection). trim=False convolves the full rows;
        by_length convolves the shorter pieces and the rest apart, each group's rows cut to its longest piece."""
        if by_length and len(piece_ids) > 1:
            pooled = self._pooled_by_length(piece_ids)
        else:
            pooled = self._pooled(piece_ids, trim)
        return self.projection(self.highway(pooled))

    def _pooled(self, piece_ids: Tensor, trim: bool = True) -> Tensor:
        """piece_ids: (n,) int64 -> (n, filters): each convolution's max over positions, after relu."""
        table = self.char_table[piece_ids]  # (n, max_chars)
        if trim and len(piece_ids):
            width = int(self.char_lengths[piece_ids].max()) + self.widest_filter
            table = table[:, :width]  # (n, width <= max_chars); see the class docstring
        chars = self.char_embedding(table.long())  # (n, width, char_dim)
        chars = chars.transpose(1, 2)  # (n, char_dim, width): Conv1d wants channels first
        return torch.cat([F.relu(conv(chars).max(dim=-1).values) for conv in self.convolutions], dim=-1)

    def _pooled_by_length(self, piece_ids: Tensor) -> Tensor:
        """_pooled of two groups, the shorter pieces and the longer, each cut to its own longest piece: exact as
        the cut is, with fewer padding positions (a batch's longest piece is about three times its median one).
        The split is the one that leaves the fewest positions to convolve. piece_ids: (n,) -> (n, filters)."""
        order = torch.argsort(self.char_lengths[piece_ids], stable=True)  # shortest first
        widths = self.char_lengths[piece_ids[order]].long() + self.widest_filter  # (n,) cut width of each prefix
        shorter = torch.arange(1, len(order) + 1)  # pieces in the shorter group, for each split
        positions = shorter * widths + (len(order) - shorter) * widths[-1]
        split = int(positions.argmin()) + 1
        groups = [piece_ids[part] for part in (order[:split], order[split:]) if len(part)]
        pooled = torch.cat([self._pooled(group) for group in groups])  # rows in `order`
        return pooled[torch.argsort(order)]

    def forward(self, piece_ids: Tensor) -> Tensor:
        """piece_ids: (batch, seq) int64 -> (batch, seq, projection)."""
        if self.cache is not None and not (torch.is_grad_enabled() and self.trainable):
            return self.cache[piece_ids]
        distinct, inverse = torch.unique(piece_ids, return_inverse=True)
        # training: convolving by length groups saves time; inference keeps one group (and mostly the cache)
        return self.encode_pieces(distinct, by_length=torch.is_grad_enabled())[inverse]

    cache: Optional[Tensor] = None  # (vocab, projection): the output for every piece, while the weights cannot change

    @property
    def trainable(self) -> bool:
        """Whether any of the CNN's weights can learn (a frozen CNN keeps using its cache, gradients or not)."""
        return any(parameter.requires_grad for parameter in self.parameters())

    def build_cache(self, chunk: int = 2048) -> None:
        """Run the CNN once over the whole vocabulary (as ELMo's vocab_to_cache does): afterwards inference is
        a table lookup. Used only where gradients are off; train() drops it when the weights can change."""
        with torch.no_grad():
            ids = torch.arange(self.char_table.shape[0], device=self.char_table.device)
            self.cache = torch.cat([self.encode_pieces(ids[i:i + chunk]) for i in range(0, len(ids), chunk)])

    def train(self, mode: bool = True) -> "CharCNN":
        if mode and self.trainable:
            self.cache = None
        return super().train(mode)


class PieceEmbedding(nn.Module):
    """The subword input: one learned vector per sentencepiece piece."""

    def __init__(self, config: LMConfig):
        super().__init__()
        self.embedding = nn.Embedding(config.num_pieces, config.projection, padding_idx=0)

    def forward(self, piece_ids: Tensor) -> Tensor:
        """piece_ids: (batch, seq) int64 -> (batch, seq, projection)."""
        return self.embedding(piece_ids)
