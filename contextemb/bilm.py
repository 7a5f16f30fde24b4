"""BiLM: the forward and backward language models read one batch of texts; states per piece, every layer.

Batch layout for two texts of 3 and 1 pieces (p = piece, s = <s>, /s = </s>, 0 = padding)::

    forward ids    s p0 p1 p2 /s        backward ids   /s p2 p1 p0 s
                   s q0 /s 0  0                        /s q0 s  0  0

Padding goes at the end of every row, where it cannot change the states before it, so a text gets the same
vectors alone or in any batch. Piece i of a text with n pieces sits at position i + 1 of its forward row
and at position n - i of its backward row.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

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
        forward_states, backward_states = self._both_directions(forward_ids.to(device), backward_ids.to(device))
        for row, index in enumerate(rows):
            n = lengths[index]
            forward_part = forward_states[:, row, 1:n + 1]  # (layers, n, proj): piece i at i + 1
            backward_part = backward_states[:, row, 1:n + 1].flip(1)  # piece i at n - i
            results[index] = torch.cat([forward_part, backward_part], dim=-1)  # (layers, n, dim)
        return results

    def _both_directions(self, forward_ids: Tensor, backward_ids: Tensor) -> tuple[Tensor, Tensor]:
        """(layers, rows, width, proj) states of each direction.

        Without gradients on a CPU with 2+ threads, the two stacks run at once in two threads, each with half
        the intra-op threads: an LSTM step's small matrix products use one core better than two (measured on
        2 cores, 4,000 NSMC reviews, 4 runs each: 1.10x the sentences/s of one direction after the other).
        """
        def states(model: LanguageModel, ids: Tensor) -> Tensor:
            return torch.stack(model.layer_states(ids))

        threads = torch.get_num_threads()
        if not PARALLEL_DIRECTIONS or torch.is_grad_enabled() or threads < 2 or forward_ids.device.type != "cpu":
            return states(self.forward_lm, forward_ids), states(self.backward_lm, backward_ids)
        torch.set_num_threads(threads // 2)
        try:
            inference = torch.is_inference_mode_enabled()

            def run(model: LanguageModel, ids: Tensor) -> Tensor:
                with torch.inference_mode(inference), torch.no_grad():  # grad modes are per thread
                    return states(model, ids)

            backward = _direction_pool().submit(run, self.backward_lm, backward_ids)
            forward = run(self.forward_lm, forward_ids)
            return forward, backward.result()
        finally:
            torch.set_num_threads(threads)


PARALLEL_DIRECTIONS = True  # benchmarks switch it off to measure the difference
_POOL: Optional[ThreadPoolExecutor] = None


def _direction_pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="contextemb-backward")
    return _POOL
