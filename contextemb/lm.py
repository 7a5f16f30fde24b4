"""LanguageModel: token encoder -> stacked one-layer LSTMs with projection and residuals -> softmax over pieces.

One class serves both directions: it never knows which one it is. The backward model is the same module
reading each sentence's pieces in reverse order, so "predict the next piece" becomes "predict the previous".

Layer layout (ELMo, Peters et al., 2018)::

    pieces (batch, seq) -> encoder -> layer 0 (batch, seq, projection)
                        -> LSTM 1  -> layer 1 (batch, seq, projection)
                        -> LSTM 2  -> layer 2 = LSTM 2 output + layer 1 (residual from the second layer on)
                        -> dropout -> softmax over the vocabulary

Separate one-layer nn.LSTMs, not one multi-layer nn.LSTM, because a multi-layer nn.LSTM returns only the
top layer and ELMo needs every layer, with residual connections between them.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from . import onednn
from .config import LMConfig
from .encoders import CharCNN, PieceEmbedding
from .inference_lstm import inference_lstm
from .inference_lstm import usable as inference_usable
from .projected_lstm import projected_lstm
from .tokenization import PAD_ID

# torch falls back from oneDNN to its generic kernel for projected LSTMs and says so on every call.
warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")

LSTMState = list[tuple[Tensor, Tensor]]  # per layer: h (1, batch, projection), c (1, batch, hidden)


class LMLoss(NamedTuple):
    nll_sum: Tensor  # () float: summed negative log-likelihood (nats) over real target pieces
    count: int  # number of real target pieces

    @property
    def mean(self) -> Tensor:
        return self.nll_sum / max(self.count, 1)


def adaptive_cutoffs(config: LMConfig) -> list[int]:
    """Cut-offs of the adaptive softmax in piece ids, from the configured fractions of the vocabulary."""
    vocab = config.num_pieces
    cutoffs = sorted({max(1, int(fraction * vocab)) for fraction in config.adaptive_cutoffs})
    return [c for c in cutoffs if c < vocab - 1]


class LanguageModel(nn.Module):
    """One direction's language model (see the module docstring for the layers)."""

    def __init__(self, config: LMConfig, char_table: Optional[Tensor] = None):
        super().__init__()
        self.config = config
        if config.input == "char-cnn":
            if char_table is None or config.chars is None:
                raise ValueError("the char-cnn input needs the tokenizer's char table and config.chars")
            self.encoder: nn.Module = CharCNN(config, char_table, config.chars)
        else:
            self.encoder = PieceEmbedding(config)
        self.lstms = nn.ModuleList(
            nn.LSTM(config.projection, config.hidden, proj_size=config.projection, batch_first=True)
            for _ in range(config.num_layers)
        )
        self.dropout = nn.Dropout(config.dropout)
        cutoffs = adaptive_cutoffs(config)
        if config.softmax == "adaptive" and cutoffs:
            self.softmax: nn.Module = nn.AdaptiveLogSoftmaxWithLoss(
                config.projection, config.num_pieces, cutoffs=cutoffs, div_value=config.adaptive_div_value)
        else:
            self.softmax = nn.Linear(config.projection, config.num_pieces)

    @property
    def num_layers(self) -> int:
        """Layers of states, the encoder's included."""
        return self.config.num_layers + 1

    def layer_states(self, piece_ids: Tensor) -> list[Tensor]:
        """Every layer's states, read left to right.

        piece_ids: (batch, seq) int64; padding (id 0) goes at the end of each row, where it cannot change
        the states of the real pieces before it. Returns num_layers tensors (batch, seq, projection).
        """
        layer0 = self.encoder(piece_ids)
        lstm_layers, _ = self._lstm_layers(layer0)
        return [layer0, *lstm_layers]

    def _lstm_layers(self, layer0: Tensor, state: Optional[LSTMState] = None) -> tuple[list[Tensor], LSTMState]:
        """The LSTM stack over the encoder's output, from `state` (None: zeros).

        layer0: (batch, seq, projection) float. Returns each LSTM layer's (batch, seq, projection) float
        outputs, the residual added from the second layer on, and each layer's last state.
        """
        current = layer0 if self.lstm_dtype is None else layer0.to(self.lstm_dtype)
        outputs: list[Tensor] = []
        new_state: LSTMState = []
        training_run = projected_lstm if self._fast_cpu_training() else (lambda lstm, *args: lstm(*args))
        for index, lstm in enumerate(self.lstms):
            run = inference_lstm if inference_usable(lstm, current) else training_run
            output, layer_state = run(lstm, self.dropout(current), None if state is None else state[index])
            if index > 0:
                output = output + current
            outputs.append(output if self.lstm_dtype is None else output.float())
            new_state.append(layer_state)
            current = output
        return outputs, new_state

    lstm_dtype: Optional[torch.dtype] = None  # set by contextemb.quantization.bfloat16_lstms (inference only)
    fast_cpu_training: bool = True  # off only to measure torch's own path beside it (benchmarks/lstm_ab.py)

    def _fast_cpu_training(self) -> bool:
        """Whether this is float32 training on the CPU, where the LSTMs run through contextemb.projected_lstm and
        the Linears' products through oneDNN: the same parameters and arithmetic, and faster (see those modules)."""
        lstm = self.lstms[0]
        if not (self.fast_cpu_training and torch.is_grad_enabled() and isinstance(lstm, nn.LSTM)):
            return False  # inference, or int8's UnrolledLSTMs (contextemb.quantization), which have no weight_ih_l0
        weight = lstm.weight_ih_l0
        return (weight.device.type == "cpu" and weight.dtype == torch.float32 and self.lstm_dtype is None
                and not torch.is_autocast_enabled("cpu"))

    def forward(self, piece_ids: Tensor, targets: Tensor) -> LMLoss:
        """Language-model loss. piece_ids, targets: (batch, seq) int64, targets[:, t] = the piece after piece_ids[:, t];
        target id 0 (padding) is ignored."""
        with onednn.linear_layers() if self._fast_cpu_training() else contextlib.nullcontext():
            return self._loss(piece_ids, targets)

    def _loss(self, piece_ids: Tensor, targets: Tensor) -> LMLoss:
        mask = targets != PAD_ID
        top = self.dropout(self.layer_states(piece_ids)[-1])[mask]  # (real pieces, projection)
        gold = targets[mask]
        if isinstance(self.softmax, nn.AdaptiveLogSoftmaxWithLoss):
            if top.device.type == "cuda" and torch.is_autocast_enabled("cuda"):
                # CUDA autocast runs log_softmax in float32, and the adaptive softmax copies those log-probs into
                # a buffer of its input's dtype: give it float32 input (its Linears still run in bf16)
                top = top.float()
            nll_sum = -self.softmax(top, gold).output.sum()
        else:
            nll_sum = F.cross_entropy(self.softmax(top), gold, reduction="sum")
        return LMLoss(nll_sum, int(gold.numel()))

    def log_probs(self, top: Tensor) -> Tensor:
        """top: (n, projection) top-layer states -> (n, vocab) log-probabilities of the next piece."""
        if isinstance(self.softmax, nn.AdaptiveLogSoftmaxWithLoss):
            return self.softmax.log_prob(top)
        return F.log_softmax(self.softmax(top), dim=-1)

    def step(self, piece_ids: Tensor, state: Optional[LSTMState] = None) -> tuple[Tensor, LSTMState]:
        """Read one more piece per row (for sampling). piece_ids: (batch,) int64.

        Returns the (batch, vocab) log-probabilities of the piece after it, and the new state.
        """
        lstm_layers, new_state = self._lstm_layers(self.encoder(piece_ids[:, None]), state)  # (batch, 1, projection)
        return self.log_probs(lstm_layers[-1][:, 0]), new_state
