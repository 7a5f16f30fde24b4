"""BiLM: the forward and backward language models read one batch of texts; states per piece, every layer.

Batch layout for two texts of 3 and 1 pieces (p = piece, s = <s>, /s = </s>, 0 = padding)::

    forward ids    s p0 p1 p2 /s        backward ids   /s p2 p1 p0 s
                   s q0 /s 0  0                        /s q0 s  0  0

Padding goes at the end of every row, where it cannot change the states before it, so a text gets the same
vectors alone or in any batch. Piece i of a text with n pieces sits at position i + 1 of its forward row
and at position n - i of its backward row.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence, TypeVar

import numpy as np

import torch
from torch import Tensor, nn

from .batching import pad_ids
from .lm import LanguageModel
from .threads import call_with_threads, submit
from .tokenization import BOS_ID, EOS_ID, PAD_ID

Result = TypeVar("Result")


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

        Returns one (layers, pieces, dim) float tensor per text (a view into its batch's padded_vectors);
        a text with no pieces gets (layers, 0, dim).
        """
        device = next(self.parameters()).device
        lengths = [len(ids) for ids in texts_piece_ids]
        results: list[Tensor] = [torch.zeros(self.num_layers, 0, self.dim, device=device)] * len(lengths)
        rows = [i for i, n in enumerate(lengths) if n > 0]
        if not rows:
            return results
        padded = self.padded_vectors([texts_piece_ids[index] for index in rows])
        for row, index in enumerate(rows):
            results[index] = padded[:, row, :lengths[index]]  # (layers, n, dim)
        return results

    def padded_vectors(self, texts_piece_ids: Sequence[Sequence[int]]) -> Tensor:
        """(layers, texts, longest, dim): piece i of text k at [:, k, i]; past a text's own pieces, meaningless
        values (padding's states). Every text needs at least one piece (an empty text would add a row of
        <s> </s> that the caller never asked for).

        One gather and one concatenation for the whole batch: per-text flips and concatenations cost more
        than the LSTM on a busy 2-core machine (measured: 11.5 s of 29 s for 5,000 NSMC reviews, bf16).
        """
        lengths = [len(ids) for ids in texts_piece_ids]
        forward_states, backward_states = self._states(texts_piece_ids)
        forward_states, backward_states = torch.stack(forward_states), torch.stack(backward_states)
        layers, rows, _, projection = backward_states.shape
        longest = max(lengths)
        # piece i sits at forward position i + 1 and backward position n - i (clamped to 0 past the text)
        backward_positions = (torch.tensor(lengths)[:, None] - torch.arange(longest)[None, :]).clamp(min=0)
        backward_part = backward_states.gather(
            2, backward_positions.to(backward_states.device)[None, :, :, None].expand(layers, rows, longest, projection))
        return torch.cat([forward_states[:, :, 1:longest + 1], backward_part], dim=-1)

    def pooled_vectors(self, texts_piece_ids: Sequence[Sequence[int]], matrix: np.ndarray) -> Tensor:
        """(layers, texts, words, dim): each text's piece vectors pooled by matrix (texts, words, longest) float32,
        whose [k, w, i] weighs piece i of text k (alignment.batch_pooling_matrix). Same conditions as
        padded_vectors.

        The weights move to each direction's own positions instead of the states to the pieces': each layer's
        pooling is one batched product over the states as the LSTM left them, with no copy of the batch's
        (layers, texts, width, dim) states (a gather and a concatenation of ~50 MB per batch otherwise).
        """
        lengths = np.fromiter(map(len, texts_piece_ids), dtype=np.int64, count=len(texts_piece_ids))
        forward_states, backward_states = self._states(texts_piece_ids)
        texts, words, longest = matrix.shape
        forward_weights = np.zeros((texts, words, longest + 2), dtype=np.float32)
        forward_weights[:, :, 1:longest + 1] = matrix  # piece i at forward position i + 1
        positions = np.arange(longest + 2)  # piece n - p at backward position p, for p in 1..n
        pieces = lengths[:, None] - positions[None, :]  # (texts, width)
        inside = (positions[None, :] >= 1) & (pieces >= 0)
        backward_weights = np.take_along_axis(matrix, np.clip(pieces, 0, longest - 1)[:, None, :], axis=2)
        backward_weights *= inside[:, None, :]
        return _on_one_thread(_pool_layers, forward_states, backward_states, forward_weights, backward_weights)

    def _states(self, texts_piece_ids: Sequence[Sequence[int]]) -> tuple[list[Tensor], list[Tensor]]:
        """Each direction's per-layer (rows, longest + 2, proj) states; forward rows <s> p0 .. /s, backward
        rows /s .. p0 <s>, both padded at the end."""
        device = next(self.parameters()).device
        if len(texts_piece_ids) == 0 or min(map(len, texts_piece_ids)) < 1:
            raise ValueError("the biLM's batch needs at least one text, each with at least one piece")
        forward_rows = [[BOS_ID, *ids, EOS_ID] for ids in texts_piece_ids]
        forward_ids = pad_ids(forward_rows, PAD_ID)  # (rows, longest + 2)
        backward_ids = pad_ids([row[::-1] for row in forward_rows], PAD_ID)
        return self._both_directions(forward_ids.to(device), backward_ids.to(device))

    def _both_directions(self, forward_ids: Tensor, backward_ids: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Each direction's states, one (rows, width, proj) per layer.

        Without gradients on a CPU with 2+ threads, the two stacks run at once on two worker threads, each
        with half the caller's intra-op threads: an LSTM step's small matrix products use one core better
        than two (measured on 2 cores, 4,000 NSMC reviews, 4 runs each: 1.10x the sentences/s of one
        direction after the other). The caller's own thread count is never touched (contextemb.threads).
        """
        threads = torch.get_num_threads()
        if not PARALLEL_DIRECTIONS or threads < 2 or forward_ids.device.type != "cpu" or torch.is_grad_enabled() \
                or torch.is_autocast_enabled("cpu"):  # autocast, unlike the grad modes, would not follow the work
            return self.forward_lm.layer_states(forward_ids), self.backward_lm.layer_states(backward_ids)
        forward = submit(threads // 2, self.forward_lm.layer_states, forward_ids)
        backward = submit(threads // 2, self.backward_lm.layer_states, backward_ids)
        return forward.result(), backward.result()


def _pool_layers(forward_states: Sequence[Tensor], backward_states: Sequence[Tensor], forward_weights: np.ndarray,
                 backward_weights: np.ndarray) -> Tensor:
    """(layers, texts, words, dim): per layer, (texts, words, width) weights x (texts, width, proj) states of
    each direction, the two directions side by side."""
    forward_matrix = torch.from_numpy(forward_weights).to(forward_states[0])
    backward_matrix = torch.from_numpy(backward_weights).to(backward_states[0])
    return torch.stack([torch.cat([torch.matmul(forward_matrix, forward), torch.matmul(backward_matrix, backward)], -1)
                        for forward, backward in zip(forward_states, backward_states)])


def _on_one_thread(function: Callable[..., Result], *args: Any) -> Result:
    """Small batched products: one CPU thread beats two (see Embedder.all_word_vectors)."""
    if args[0][0].device.type != "cpu":
        return function(*args)
    return call_with_threads(1, function, *args)


PARALLEL_DIRECTIONS = True  # benchmarks switch it off to measure the difference
