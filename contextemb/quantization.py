"""Faster inference at lower precision: int8 (`load(..., quantize=True)`) or bf16 LSTMs (`load(..., precision="bf16")`).

int8 -- dynamic quantization of the LSTM and Linear layers.

`torch.ao.quantization.quantize_dynamic` cannot take the biLM's LSTMs as they are: it rebuilds an
`nn.LSTM` without its `proj_size`, which changes the state width. So each projected LSTM is first rewritten
as `UnrolledLSTM` -- the same arithmetic, one time step at a time, with its three matrix products held in
`nn.Linear`s (input -> gates, state -> gates, cell -> projection) -- and then `quantize_dynamic` swaps
every `nn.Linear` for an int8 one: weights quantized once, activations per call, int32 accumulation.

On this repository's 2-core AVX-512 VNNI CPU an int8 LSTM step runs about 2x the float32 one; vectors move by
a few percent of their norm (see README, Performance, and tests/test_quantization.py for the probe check).
"""

from __future__ import annotations

import copy
import warnings
from typing import Optional

import torch
from torch import Tensor, nn

from .bilm import BiLM
from .errors import ConfigError
from .lm import LanguageModel


class UnrolledLSTM(nn.Module):
    """A one-layer, batch-first, projected `nn.LSTM` (inference only) written as three `nn.Linear`s.

    input_gates: (input) -> (4 * hidden), both biases; hidden_gates: (projection) -> (4 * hidden);
    projection: (hidden) -> (projection). Gate order i, f, g, o as in `nn.LSTM`.
    """

    def __init__(self, input_size: int, hidden: int, projection: int):
        super().__init__()
        self.hidden = hidden
        self.projection_size = projection
        self.input_gates = nn.Linear(input_size, 4 * hidden)
        self.hidden_gates = nn.Linear(projection, 4 * hidden, bias=False)
        self.projection = nn.Linear(hidden, projection, bias=False)

    @classmethod
    def from_lstm(cls, lstm: nn.LSTM) -> "UnrolledLSTM":
        if lstm.num_layers != 1 or lstm.bidirectional or not lstm.batch_first or not lstm.bias or lstm.proj_size < 1:
            raise ValueError("UnrolledLSTM rewrites one-layer, one-way, batch-first nn.LSTMs with biases and proj_size")
        unrolled = cls(lstm.input_size, lstm.hidden_size, lstm.proj_size)
        with torch.no_grad():
            unrolled.input_gates.weight.copy_(lstm.weight_ih_l0)
            unrolled.input_gates.bias.copy_(lstm.bias_ih_l0 + lstm.bias_hh_l0)
            unrolled.hidden_gates.weight.copy_(lstm.weight_hh_l0)
            unrolled.projection.weight.copy_(lstm.weight_hr_l0)
        return unrolled.to(lstm.weight_ih_l0.device).eval()

    def forward(self, inputs: Tensor, state: Optional[tuple[Tensor, Tensor]] = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """inputs: (batch, seq, input); state: h (1, batch, projection), c (1, batch, hidden) or None.

        Returns (batch, seq, projection) outputs and the last (h, c), like `nn.LSTM`.
        """
        batch, steps, _ = inputs.shape
        gates_from_input = self.input_gates(inputs.reshape(batch * steps, -1)).view(batch, steps, 4 * self.hidden)
        if state is None:
            h = inputs.new_zeros(batch, self.projection_size)
            c = inputs.new_zeros(batch, self.hidden)
        else:
            h, c = state[0][0], state[1][0]
        outputs = inputs.new_empty(batch, steps, self.projection_size)
        cell_input = slice(2 * self.hidden, 3 * self.hidden)
        for step in range(steps):
            gates = gates_from_input[:, step] + self.hidden_gates(h)  # (batch, 4 * hidden)
            # One sigmoid for all four gates, with tanh(g) = 2 * sigmoid(2g) - 1: 1.5x faster than four calls.
            gates[:, cell_input] *= 2
            i, f, g, o = gates.sigmoid_().chunk(4, dim=1)
            c = torch.addcmul(f * c, i, g.mul(2).sub_(1))
            h = self.projection(o * torch.tanh(c))
            outputs[:, step] = h
        return outputs, (h[None], c[None])


def quantize_language_model(model: LanguageModel) -> LanguageModel:
    """The same model with int8 LSTMs and Linears (CPU, inference only); `model` itself is left as it is.

    Build the char-CNN cache before quantizing, so the cached layer 0 stays float32.
    """
    if next(model.parameters()).device.type != "cpu":
        raise ConfigError("int8 dynamic quantization runs on the CPU only; load with device='cpu'")
    unrolled = _copy_without_lstms(model)
    unrolled.lstms = nn.ModuleList(UnrolledLSTM.from_lstm(lstm) for lstm in model.lstms)
    with warnings.catch_warnings():  # torch marks its eager quantization API as moving to torchao
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=UserWarning)
        torch.ao.quantization.quantize_dynamic(  # one weight scale per output row: closer to float than one per matrix
            unrolled.eval(), {nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}, inplace=True)
    return unrolled


def quantize_bilm(bilm: BiLM) -> BiLM:
    """Both directions quantized (see quantize_language_model)."""
    return BiLM(quantize_language_model(bilm.forward_lm), quantize_language_model(bilm.backward_lm)).eval()


def _copy_without_lstms(model: LanguageModel) -> LanguageModel:
    """A deep copy of `model` without copying its LSTMs (the caller puts their replacements in)."""
    lstms = model.lstms
    del model._modules["lstms"]
    try:
        clone = copy.deepcopy(model)
    finally:
        model.lstms = lstms
    return clone


def bfloat16_lstms(bilm: BiLM) -> BiLM:
    """Both directions' LSTMs in bfloat16, in place (inference only); every layer's states come back float32.

    On CPUs with AVX-512 bf16 (or on GPUs) the LSTM runs about 1.7x faster; the char-CNN layer is untouched.
    """
    for model in (bilm.forward_lm, bilm.backward_lm):
        model.lstms.to(torch.bfloat16)
        model.lstm_dtype = torch.bfloat16
    return bilm
