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

from .batching import pad_ids
from .lm import LanguageModel
from .threads import submit
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
        forward_rows = [[BOS_ID, *texts_piece_ids[index], EOS_ID] for index in rows]
        forward_ids = pad_ids(forward_rows, PAD_ID)  # (rows, width)
        backward_ids = pad_ids([row[::-1] for row in forward_rows], PAD_ID)
        forward_states, backward_states = self._both_directions(forward_ids.to(device), backward_ids.to(device))
        for row, index in enumerate(rows):
            n = lengths[index]
            forward_part = forward_states[:, row, 1:n + 1]  # (layers, n, proj): piece i at i + 1
            backward_part = backward_states[:, row, 1:n + 1].flip(1)  # piece i at n - i
            results[index] = torch.cat([forward_part, backward_part], dim=-1)  # (layers, n, dim)
        return results

    def _both_directions(self, forward_ids: Tensor, backward_ids: Tensor) -> tuple[Tensor, Tensor]:
        """(layers, rows, width, proj) states of each direction.

        Without gradients on a CPU with 2+ threads, the two stacks run at once on two worker threads, each
        with half the caller's intra-op threads: an LSTM step's small matrix products use one core better
        than two (measured on 2 cores, 4,000 NSMC reviews, 4 runs each: 1.10x the sentences/s of one
        direction after the other). The caller's own thread count is never touched (contextemb.threads).
        """
        threads = torch.get_num_threads()
        if not PARALLEL_DIRECTIONS or threads < 2 or forward_ids.device.type != "cpu" or torch.is_grad_enabled() \
                or torch.is_autocast_enabled("cpu"):  # autocast, unlike the grad modes, would not follow the work
            return _layer_states(self.forward_lm, forward_ids), _layer_states(self.backward_lm, backward_ids)
        forward = submit(threads // 2, _layer_states, self.forward_lm, forward_ids)
        backward = submit(threads // 2, _layer_states, self.backward_lm, backward_ids)
        return forward.result(), backward.result()


def _layer_states(model: LanguageModel, piece_ids: Tensor) -> Tensor:
    """(layers, rows, width, proj): every layer's states of one direction, stacked."""
    return torch.stack(model.layer_states(piece_ids))


PARALLEL_DIRECTIONS = True  # benchmarks switch it off to measure the difference
