"""The biLM's projected LSTMs at inference on the CPU, with every product through oneDNN on weights packed once.

Without gradients, `nn.LSTM` on the CPU runs one product per weight and time step through torch's general
kernels: in float32 that is MKL, which runs its AVX2 code on AMD CPUs (see contextemb.onednn), and in both
float32 and bfloat16 each step's weight is taken as a plain matrix again. Here the input products of all
time steps are one product, and the two per-step weights (W_hh, W_hr) are packed once into oneDNN's blocked
layout for the whole call -- and kept, keyed by the parameters' storage and version, for the calls after it,
so an optimizer step or a `load_state_dict` in between is always seen. The arithmetic is `nn.LSTM`'s::

    gates_t = W_ih x_t + b_ih + b_hh + W_hh h_{t-1}        (batch, 4 * hidden), order i, f, g, o
    c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)      (batch, hidden)
    h_t = W_hr (sigmoid(o) * tanh(c_t))                    (batch, projection)

with tanh(g) as 2 * sigmoid(2g) - 1 (the g rows of W_ih, W_hh and the biases doubled once: exact), so one
sigmoid serves all four gates. Measured on one core of this repository's AMD EPYC (Zen 5, AVX-512 BF16), one
layer 512/256, 200 rows x 24 steps: float32 140.5 -> 76.2 ms, bfloat16 42.2 -> 34.7 ms (`python -m
benchmarks.lstm_ab --inference`, 2026-12-02).

Training never comes here: with gradients the caller runs `nn.LSTM` (or contextemb.projected_lstm).
"""

from __future__ import annotations

import threading
import weakref
from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

from . import onednn
from .projected_lstm import g_rows_doubled, supports

ENABLED = True  # switched off only to measure nn.LSTM beside it (benchmarks/lstm_ab.py --inference)

_DTYPES = (torch.float32, torch.bfloat16)


class _Packed(NamedTuple):
    """One LSTM's weights as oneDNN's products want them (packed: contextemb.onednn.prepare): w_ih
    (4 * hidden, input), bias (4 * hidden,) and w_hh (4 * hidden, projection) with the g rows doubled, w_hr."""
    key: tuple
    w_ih: Tensor
    bias: Tensor
    w_hh: Tensor
    w_hr: Tensor


_packed: "weakref.WeakKeyDictionary[nn.LSTM, _Packed]" = weakref.WeakKeyDictionary()
_packed_lock = threading.Lock()  # the two directions run on two threads


def usable(lstm: nn.Module, inputs: Tensor) -> bool:
    """Whether `inference_lstm` runs `lstm` on `inputs`: no gradients, no autocast, a CPU with oneDNN, float32 or
    bfloat16 weights and inputs alike, and a one-layer, one-way, batch-first LSTM with biases and a projection."""
    if not (ENABLED and onednn.present() and isinstance(lstm, nn.LSTM) and supports(lstm)):
        return False
    weight = lstm.weight_hh_l0
    return (not torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu") and weight.device.type == "cpu"
            and weight.dtype in _DTYPES and inputs.dtype == weight.dtype and inputs.device.type == "cpu")


def inference_lstm(lstm: nn.LSTM, inputs: Tensor, state: Optional[tuple[Tensor, Tensor]] = None
                   ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """`lstm(inputs, state)` without gradients; `lstm` and `inputs` must pass `usable`.

    inputs: (batch, seq, input); state: h (1, batch, projection), c (1, batch, hidden), or None for zeros.
    Returns (batch, seq, projection) outputs and the last (h, c), each (1, batch, ...), like `nn.LSTM`.
    """
    batch, steps, _ = inputs.shape
    hidden, projection = lstm.hidden_size, lstm.proj_size
    weights = _weights(lstm, batch)
    if state is None:
        h, c = inputs.new_zeros(batch, projection), inputs.new_zeros(batch, hidden)
    else:
        h, c = state[0][0].to(inputs.dtype), state[1][0].to(inputs.dtype)
    outputs = inputs.new_empty(steps, batch, projection)  # time-major: each step's slice contiguous
    if steps == 0:
        return outputs.transpose(0, 1), (h[None], c[None])
    time_major = inputs.transpose(0, 1).reshape(steps * batch, -1)  # (seq * batch, input)
    acts = onednn.times_transposed(time_major, weights.w_ih, weights.bias).view(steps, batch, 4 * hidden)
    for step in range(steps):
        gates = acts[step].add_(onednn.times_transposed(h, weights.w_hh)).sigmoid_()
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.addcmul(f * c, i, g.mul_(2).sub_(1))
        h = onednn.times_transposed(o * torch.tanh(c), weights.w_hr)
        outputs[step] = h
    return outputs.transpose(0, 1), (h[None], c[None])


def _weights(lstm: nn.LSTM, rows: int) -> _Packed:
    """lstm's packed weights, packed now if its parameters changed (or moved) since the last call."""
    parameters = (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0, lstm.weight_hr_l0)
    key = tuple((p.data_ptr(), p._version, p.dtype) for p in parameters)
    with _packed_lock:
        cached = _packed.get(lstm)
        if cached is not None and cached.key == key:
            return cached
    w_ih, w_hh, b_ih, b_hh, w_hr = (p.detach() for p in parameters)
    doubled = g_rows_doubled(w_ih)
    # w_ih meets all time steps' rows at once (seq * batch), the other two one step's (batch)
    packed = _Packed(key, onednn.prepare(w_ih * doubled[:, None], 16 * rows), (b_ih + b_hh) * doubled,
                     onednn.prepare(w_hh * doubled[:, None], rows), onednn.prepare(w_hr, rows))
    with _packed_lock:
        _packed[lstm] = packed
    return packed
