"""Yardsticks measured in the same run as everything else: matrix-product rates and a plain nn.LSTM LM step.

The machine is shared and its speed moves from day to day, so the other parts' figures are read as ratios to
these.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from benchmarks.report import Stats, summary

MATMUL_SIZE = 2048


def matmul_rate(repeats: int, dtype: torch.dtype = torch.float32) -> Stats:
    """G(FL)OP/s of a 2048^3 matrix product in `dtype`: float32, bfloat16, or int8 (torch._int_mm, int32 out)."""
    n = MATMUL_SIZE
    if dtype == torch.int8:
        a, b = (torch.randint(-100, 100, (n, n), dtype=torch.int8) for _ in range(2))
        product = torch._int_mm
    else:
        a, b = (torch.randn(n, n, dtype=dtype) for _ in range(2))
        product = torch.matmul
    for _ in range(3):  # warm-up: kernels chosen, buffers allocated
        product(a, b)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        product(a, b)
        rates.append(2 * n ** 3 / (time.perf_counter() - start) / 1e9)
    return summary(rates)


def plain_lstm_step(repeats: int, steps: int) -> Stats:
    """tokens/s of a plain nn.LSTM LM training step of the default sizes, in this process's threads.

    embedding 256 -> 2 x LSTM 512 proj 256 -> adaptive softmax 8k; batch (32, 64) = 2,048 tokens; Adam.
    """
    torch.manual_seed(0)
    vocab, batch, seq = 8000, 32, 64
    embedding = nn.Embedding(vocab, 256)
    lstm = nn.LSTM(256, 512, num_layers=2, proj_size=256, batch_first=True)
    softmax = nn.AdaptiveLogSoftmaxWithLoss(256, vocab, cutoffs=[1000, 4000], div_value=4.0)
    optimizer = torch.optim.Adam([*embedding.parameters(), *lstm.parameters(), *softmax.parameters()], 1e-3)
    inputs, targets = torch.randint(0, vocab, (batch, seq)), torch.randint(0, vocab, (batch, seq))
    rates = []
    for _ in range(repeats):
        times = []
        for step in range(steps + 3):  # the first 3 steps warm up
            start = time.perf_counter()
            states, _ = lstm(embedding(inputs))  # (batch, seq, 256)
            loss = softmax(states.reshape(-1, 256), targets.reshape(-1)).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step >= 3:
                times.append(time.perf_counter() - start)
        rates.append(batch * seq / statistics.median(times))
    return summary(rates)


@dataclass(frozen=True)
class Yardsticks:
    """The medians the other parts divide by; None where not measured in this run."""

    matmul_gflops: Optional[float] = None  # float32, 2048^3
    lstm_tokens_per_s: Optional[float] = None  # plain nn.LSTM LM training step
