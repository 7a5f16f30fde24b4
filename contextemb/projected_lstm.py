"""A one-layer projected LSTM for training on the CPU, with a hand-written backward that batches time.

The same arithmetic as a one-layer, batch-first `nn.LSTM(proj_size=...)`, on that module's own parameters
(weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, weight_hr_l0), so model files do not change::

    gates_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh          (batch, 4 * hidden), order i, f, g, o
    c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)        (batch, hidden)
    h_t = W_hr (sigmoid(o) * tanh(c_t))                      (batch, projection)

Why: torch's `nn.LSTM` on the CPU sends its products to MKL, which runs its AVX2 code on AMD CPUs; here every
product goes through contextemb.onednn instead, at about twice the rate on this repository's AMD EPYC (Zen 5),
and for that the module has to make its products itself, backward included. The forward does the input
products of all time steps in one product up front (as `nn.LSTM` does too) and keeps what the backward needs.
The backward's loop over time carries only what must be sequential -- the gradient flowing back through h and
c, two products per step (dgates @ W_hh, dh @ W_hr) -- and then makes each weight gradient of all time steps in
one product over batch * seq rows, where `nn.LSTM`'s autograd makes one per step. With torch.mm for every
product this module runs at `nn.LSTM`'s speed (benchmarks/lstm_ab.py --attribution): the gain is oneDNN's.

tanh(x) is computed as 2 * sigmoid(2x) - 1, so one sigmoid serves all four gates (the g rows of the weights
are doubled for the forward's products: an exact scaling in floating point).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

from . import onednn


class _Saved(NamedTuple):
    """What the forward keeps for the backward, time-major (seq first).

    states: (seq + 1, batch, projection) h_0 .. h_seq; acts: (seq, batch, 4 * hidden) gate activations i, f, g, o;
    by_gate: (seq, batch, 4 * hidden) what dL/dc_t (first three blocks) or dL/dr_t (last) is multiplied by to give
    dL/d(gate pre-activation); through_tanh: (seq, batch, hidden) dc_t/dr_t = o_t * (1 - tanh(c_t)^2);
    cell_out: (seq, batch, hidden) r_t = o_t * tanh(c_t), the projection's input.
    """
    states: Tensor
    acts: Tensor
    by_gate: Tensor
    through_tanh: Tensor
    cell_out: Tensor


def g_rows_doubled(w_ih: Tensor) -> Tensor:
    """(4 * hidden,) ones with 2 on the g rows, for w_ih: (4 * hidden, input): scaling those rows of the gate
    weights and biases lets one sigmoid serve all four gates, as tanh(x) = 2 * sigmoid(2x) - 1."""
    hidden = w_ih.shape[0] // 4
    doubled = torch.ones(4 * hidden, dtype=w_ih.dtype, device=w_ih.device)
    doubled[2 * hidden:3 * hidden] = 2
    return doubled


def _forward(inputs: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor, w_hr: Tensor
             ) -> tuple[_Saved, Tensor]:
    """inputs: (seq, batch, input) time-major, contiguous; h0: (batch, projection); c0: (batch, hidden).

    Returns what the backward needs (states[1:] are the outputs) and c_seq (batch, hidden).
    """
    steps, batch, _ = inputs.shape
    hidden = w_hh.shape[0] // 4
    i_, f_, g_, o_ = (slice(k * hidden, (k + 1) * hidden) for k in range(4))
    doubled = g_rows_doubled(w_ih)
    # all time steps' input products in one: (seq * batch, input) @ (input, 4 * hidden)
    acts = onednn.times_transposed(inputs.view(steps * batch, -1), w_ih * doubled[:, None], bias * doubled)
    acts = acts.view(steps, batch, 4 * hidden)
    recurrent = onednn.prepare(w_hh * doubled[:, None], batch)
    projection = onednn.prepare(w_hr, batch)
    saved = _Saved(inputs.new_empty(steps + 1, batch, w_hr.shape[0]), acts, torch.empty_like(acts),
                   inputs.new_empty(steps, batch, hidden), inputs.new_empty(steps, batch, hidden))
    saved.states[0] = h0
    h, c = h0, c0
    for step in range(steps):
        # element-wise work per step, while the step's (batch, 4 * hidden) values are in cache
        gates = acts[step].add_(onednn.times_transposed(h, recurrent)).sigmoid_()
        i, f, g, o = gates[:, i_], gates[:, f_], gates[:, g_], gates[:, o_]
        factors = torch.addcmul(gates, gates, gates, value=-1, out=saved.by_gate[step])  # sigmoid' = s(1 - s)
        factors[:, g_].mul_(4)  # tanh'(x) = 1 - tanh(x)^2 = 4 s(1 - s) for s = sigmoid(2x)
        g.mul_(2).sub_(1)
        factors[:, i_].mul_(g)
        factors[:, f_].mul_(c)
        factors[:, g_].mul_(i)
        c = torch.addcmul(f * c, i, g)
        cell_tanh = torch.tanh(c)
        factors[:, o_].mul_(cell_tanh)
        r = torch.mul(o, cell_tanh, out=saved.cell_out[step])
        torch.addcmul(o, r, cell_tanh, value=-1, out=saved.through_tanh[step])
        h = onednn.times_transposed(r, projection)  # (batch, projection)
        saved.states[step + 1] = h
    return saved, c


def _backward(grad_outputs: Tensor, grad_h: Tensor, grad_c: Optional[Tensor], inputs: Tensor, saved: _Saved,
              w_ih: Tensor, w_hh: Tensor, w_hr: Tensor) -> tuple[Tensor, ...]:
    """Gradients of inputs, h0, c0, w_ih, w_hh, bias (one for both), w_hr; shapes as in _forward.

    grad_outputs: (seq, batch, projection); grad_h: (batch, projection) on h_seq; grad_c: (batch, hidden) on
    c_seq, or None.
    """
    steps, batch, _ = inputs.shape
    hidden = w_hh.shape[0] // 4
    forget = saved.acts[:, :, hidden:2 * hidden]
    by_gate = saved.by_gate.view(steps, batch, 4, hidden)
    to_hidden = onednn.prepare(w_hr.t(), batch)  # dL/dr_t = dL/dh_t @ w_hr
    to_previous = onednn.prepare(w_hh.t(), batch)  # dL/dh_{t-1} = dL/dgates_t @ w_hh
    grad_gates = torch.empty_like(saved.acts).view(steps, batch, 4, hidden)  # dL/d(gate pre-activations)
    grad_hs = torch.empty_like(grad_outputs)  # dL/dh_t along every path: (seq, batch, projection)
    flowing_h, flowing_c = grad_h, grad_c
    for step in range(steps - 1, -1, -1):
        dh = torch.add(grad_outputs[step], flowing_h, out=grad_hs[step])
        dr = onednn.times_transposed(dh, to_hidden)  # (batch, hidden)
        through_tanh = saved.through_tanh[step]
        dc = dr * through_tanh if flowing_c is None else torch.addcmul(flowing_c, dr, through_tanh)
        torch.mul(by_gate[step, :, :3], dc[:, None], out=grad_gates[step, :, :3])
        torch.mul(by_gate[step, :, 3], dr, out=grad_gates[step, :, 3])
        flowing_c = dc * forget[step]
        flowing_h = onednn.times_transposed(grad_gates[step].view(batch, 4 * hidden), to_previous)
    # the weight gradients of all time steps, each one product over seq * batch rows
    rows = steps * batch
    grad_gates = grad_gates.view(rows, 4 * hidden)
    grad_inputs = onednn.times_transposed(grad_gates, w_ih.t()).view(steps, batch, -1)
    grad_w_ih = onednn.summed_outer(grad_gates, inputs.view(rows, -1))
    grad_w_hh = onednn.summed_outer(grad_gates, saved.states[:-1].reshape(rows, -1))
    grad_w_hr = onednn.summed_outer(grad_hs.view(rows, -1), saved.cell_out.view(rows, hidden))
    return grad_inputs, flowing_h, flowing_c, grad_w_ih, grad_w_hh, grad_gates.sum(0), grad_w_hr


class _ProjectedLSTMFunction(torch.autograd.Function):
    """Autograd wrapper of _forward and _backward; inputs time-major (seq, batch, input)."""

    @staticmethod
    def forward(ctx, inputs, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr):
        inputs = inputs.contiguous()
        saved, c = _forward(inputs, h0, c0, w_ih, w_hh, b_ih + b_hh, w_hr)
        ctx.save_for_backward(inputs, *saved, w_ih, w_hh, w_hr)
        ctx.set_materialize_grads(False)
        return saved.states[1:], saved.states[-1].clone(), c

    @staticmethod
    def backward(ctx, grad_outputs, grad_h, grad_c):
        inputs, *saved, w_ih, w_hh, w_hr = ctx.saved_tensors
        saved = _Saved(*saved)
        steps, batch, projection = saved.states.shape[0] - 1, *saved.states.shape[1:]
        if grad_outputs is None:
            grad_outputs = inputs.new_zeros(steps, batch, projection)
        grad_h = inputs.new_zeros(batch, projection) if grad_h is None else grad_h
        grads = _backward(grad_outputs.contiguous(), grad_h, grad_c, inputs, saved, w_ih, w_hh, w_hr)
        grad_inputs, grad_h0, grad_c0, grad_w_ih, grad_w_hh, grad_bias, grad_w_hr = grads
        if grad_c0 is None:
            grad_c0 = inputs.new_zeros(batch, w_hr.shape[1])
        return grad_inputs, grad_h0, grad_c0, grad_w_ih, grad_w_hh, grad_bias, grad_bias.clone(), grad_w_hr


def supports(lstm: nn.LSTM) -> bool:
    """Whether projected_lstm can run `lstm`: one layer, one way, batch-first, with biases and proj_size."""
    return (lstm.num_layers == 1 and not lstm.bidirectional and lstm.batch_first and lstm.bias
            and lstm.proj_size > 0)


def projected_lstm(lstm: nn.LSTM, inputs: Tensor, state: Optional[tuple[Tensor, Tensor]] = None
                   ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """`lstm(inputs, state)` computed by this module (see the module docstring); `lstm` must pass `supports`.

    inputs: (batch, seq, input) float; state: h (1, batch, projection), c (1, batch, hidden), or None for zeros.
    Returns (batch, seq, projection) outputs and the last (h, c), each (1, batch, ...), like `nn.LSTM`.
    Dropout between layers is the caller's (a one-layer nn.LSTM has none).
    """
    if not supports(lstm):
        raise ValueError("projected_lstm runs one-layer, one-way, batch-first nn.LSTMs with biases and proj_size")
    batch = inputs.shape[0]
    if state is None:
        h0 = inputs.new_zeros(batch, lstm.proj_size)
        c0 = inputs.new_zeros(batch, lstm.hidden_size)
    else:
        h0, c0 = state[0][0], state[1][0]
    # time-major inside, so that each step's slice is contiguous; the output goes back as a transposed view
    outputs, h, c = _ProjectedLSTMFunction.apply(
        inputs.transpose(0, 1), h0, c0, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0,
        lstm.weight_hr_l0)
    return outputs.transpose(0, 1), (h[None], c[None])
