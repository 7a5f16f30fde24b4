"""float32 matrix products through oneDNN on x86 CPUs, with torch.mm as the fallback.

torch sends a float32 `torch.mm` on the CPU to MKL, and MKL runs its AVX2 code on AMD CPUs: on this
repository's AMD EPYC (Zen 5, AVX-512) it reaches 81-93 GFLOP/s on one core for the LSTM's products, where
oneDNN (shipped inside torch, picking its kernels by instruction set, not by vendor) reaches 150-220 GFLOP/s on
the same products, in float32 (`python -m benchmarks.lstm_ab --matmul`; benchmarks/results/*-lstm-ab.md). torch exposes oneDNN's float32 product
as the operator its compiler uses for linear layers, `mkldnn::_linear_pointwise` (X @ W^T), which also takes
a weight packed once into oneDNN's blocked layout -- worth it when one weight meets many small products, as
in the LSTM's steps.

    weight = prepare(w_hh, rows=64)   # (out, in) -> packed (or w_hh itself without oneDNN)
    gates = times_transposed(h, weight)  # (rows, in) @ (out, in)^T -> (rows, out), dense float32
"""

from __future__ import annotations

import platform
from typing import Optional

import torch
from torch import Tensor
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

ENABLED = True  # switched off only to measure torch.mm beside it (benchmarks/lstm_ab.py)


def _onednn_present() -> bool:
    return (torch.backends.mkldnn.is_available() and platform.machine().lower() in ("x86_64", "amd64")
            and hasattr(torch.ops.mkldnn, "_linear_pointwise") and hasattr(torch.ops.mkldnn, "_reorder_linear_weight"))


_PRESENT = _onednn_present()


def present() -> bool:
    """Whether this torch has oneDNN's linear operators and runs on an x86 CPU (whatever ENABLED says)."""
    return _PRESENT


def usable(tensor: Tensor) -> bool:
    """Whether products on `tensor` go to oneDNN: float32 on an x86 CPU with oneDNN, and ENABLED."""
    return ENABLED and _PRESENT and tensor.device.type == "cpu" and tensor.dtype == torch.float32


def prepare(weight: Tensor, rows: int) -> Tensor:
    """weight: (out, in), for many products with about `rows` rows -> the form times_transposed takes.

    float32 or bfloat16 (packed for oneDNN), any other weight as it is."""
    if not (ENABLED and _PRESENT and weight.device.type == "cpu" and weight.dtype in (torch.float32, torch.bfloat16)):
        return weight
    return torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), rows)


def times_transposed(matrix: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """matrix: (rows, in) float; weight: (out, in), dense or from prepare; bias: (out,) or None
    -> matrix @ weight^T + bias, (rows, out) dense."""
    if weight.is_mkldnn or usable(matrix):
        weight = weight if weight.is_mkldnn else _strided_as_onednn_wants(weight)
        return torch.ops.mkldnn._linear_pointwise(_strided_as_onednn_wants(matrix), weight, bias, "none", [], "")
    if bias is None:
        return torch.mm(matrix, weight.t())
    return torch.addmm(bias, matrix, weight.t())


def _strided_as_onednn_wants(matrix: Tensor) -> Tensor:
    """matrix itself if rows or columns are contiguous, else a contiguous copy: oneDNN runs a slow reference
    kernel on other layouts, such as the broadcast (stride 0) gradient of a sum -- 200x slower, measured."""
    if 0 not in matrix.stride() and 1 in matrix.stride():
        return matrix
    return matrix.contiguous()


def summed_outer(left: Tensor, right: Tensor) -> Tensor:
    """left: (rows, m), right: (rows, n) -> left^T @ right (m, n), contiguous: a weight gradient summed over rows.

    Computed as (right^T @ left)^T: oneDNN runs that layout fastest here (measured against the other three).
    """
    return times_transposed(right.t(), left.t()).t().contiguous()


class _Linear(torch.autograd.Function):
    """F.linear with its forward and backward products through oneDNN."""

    @staticmethod
    def forward(ctx, inputs, weight, bias):
        rows = inputs.reshape(-1, inputs.shape[-1])  # (rows, in)
        ctx.save_for_backward(rows, weight)
        ctx.has_bias = bias is not None
        return times_transposed(rows, weight, bias).view(*inputs.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad_outputs):
        rows, weight = ctx.saved_tensors
        grad_rows = grad_outputs.reshape(-1, weight.shape[0])  # (rows, out)
        grad_inputs = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_inputs = times_transposed(grad_rows, weight.t()).view(*grad_outputs.shape[:-1], weight.shape[1])
        if ctx.needs_input_grad[1]:
            grad_weight = summed_outer(grad_rows, rows)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_rows.sum(0)
        return grad_inputs, grad_weight, grad_bias


def linear(inputs: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """F.linear (inputs: (..., in), weight: (out, in), bias: (out,) -> (..., out)) with oneDNN products both ways."""
    return _Linear.apply(inputs, weight, bias)


class linear_layers(TorchFunctionMode):
    """Within it, every F.linear (so every nn.Linear) on float32 CPU tensors runs as `linear` above.

    A mode rather than a changed module, so that layers torch owns (the adaptive softmax's) are covered too.
    It only has to be active while the forward runs: `linear` carries its own backward.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            return _linear_or_not(*args, **kwargs)
        return func(*args, **kwargs)


def _linear_or_not(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:  # F.linear's names
    if usable(input) and usable(weight) and input.numel() and weight.numel():  # oneDNN wants no empty products
        return linear(input, weight, bias)
    return F.linear(input, weight, bias)
