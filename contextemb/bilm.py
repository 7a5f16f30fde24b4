"""BiLM: the forward and backward language models read one batch of texts; states per piece, every layer.

Batch layout for two texts of 3 and 1 pieces (p = piece, s = <s>, /s = </s>, 0 = padding)::

    forward ids    s p0 p1 p2 /s        backward ids   /s p2 p1 p0 s
                   s q0 /s 0  0                        /s q0 s  0  0

Padding goes at the end of every row, where it cannot change the states before it, so a text gets the same
vectors alone or in any batch. Piece i of a text with n pieces sits at position i + 1 of its forward row
and at position n - i of its backward row.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .lm import LanguageModel
from .tokenization import BOS_ID, EOS_ID, PAD_ID


class BiLM(nn.Module):
    """The two directions' language models, independent, side by side."""

    def __init__(self, forward_lm: LanguageModel, backward_lm: LanguageModel):
        super().__init__()
        self.forward_lm = forward_lm
        self.backward_lm = backward_lm

    @property
    def num_layers(self) -> int:
        """Layers of vectors: the token encoders (layer 0) and each LSTM layer."""
        return self.forward_lm.num_layers

    @property
    def dim(self) -> int:
        """Width of every layer's vectors: forward and backward states concatenated."""
        return 2 * self.forward_lm.config.projection

    def forward(self, texts_piece_ids: Sequence[Sequence[int]]) -> list[Tensor]:
        """Piece vectors of each text. texts_piece_ids: piece ids per text (no <s>/</s>).

        Returns one (layers, pieces, dim) float tensor per text; a text with no pieces gets (layers, 0, dim).
        """
        device = next(self.parameters()).device
        lengths = [len(ids) for ids in texts_piece_ids]
        results: list[Tensor] = [torch.zeros(self.num_layers, 0, self.dim, device=device)] * len(lengths)
        rows = [i for i, n in enumerate(lengths) if n > 0]
        if not rows:
            return results
        width = max(lengths[i] for i in rows) + 2
        forward_ids = torch.full((len(rows), width), PAD_ID, dtype=torch.long)
        backward_ids = torch.full((len(rows), width), PAD_ID, dtype=torch.long)
        for row, index in enumerate(rows):
            sequence = [BOS_ID, *texts_piece_ids[index], EOS_ID]
            forward_ids[row, :len(sequence)] = torch.tensor(sequence)
            backward_ids[row, :len(sequence)] = torch.tensor(sequence[::-1])
        forward_states = torch.stack(self.forward_lm.layer_states(forward_ids.to(device)))  # (layers, rows, width, proj)
        backward_states = torch.stack(self.backward_lm.layer_states(backward_ids.to(device)))
        for row, index in enumerate(rows):
            n = lengths[index]
            forward_part = forward_states[:, row, 1:n + 1]  # (layers, n, proj): piece i at i + 1
            backward_part = backward_states[:, row, 1:n + 1].flip(1)  # piece i at n - i
            results[index] = torch.cat([forward_part, backward_part], dim=-1)  # (layers, n, dim)
        return results
