"""Scale-out on one machine: pieces/s of one process with 2 threads against torchrun with 2 processes (DDP over
gloo) of 1 thread each, same corpus, same settings, forward direction, float32.

A 2-process step holds two batches (one per rank: the global batch a single process would step on with both), so
it takes half the steps to train on the same batches; the comparison is in pieces/s, summed over the ranks. The
runs alternate, one pair per repeat.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import CLI, NSMC_CORPUS, PartFailed, first_lines, metrics, run, seeded_model_dir, training_rate
from benchmarks.report import Report, summary

TORCHRUN = Path(sys.executable).with_name("torchrun")


@dataclass(frozen=True)
class ScalingSizes:
    lines: int
    steps: int  # of the single process; n processes take steps / n, over the same batches
    log_every: int  # likewise divided; the first window (warm-up) is left out
    repeats: int
    timeout_s: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pieces_per_s(processes: int, corpus: Path, out: Path, sizes: ScalingSizes) -> float:
    seeded_model_dir(out)
    log_every = max(1, sizes.log_every // processes)
    options = [corpus, "--out", out, "--resume", "--direction", "forward", "--max-steps", sizes.steps // processes,
               "--log-every", log_every, "--eval-every", 10**6, "--checkpoint-every", 10**6, "--no-progress",
               "--precision", "float32"]
    if processes == 1:
        run([*CLI, "-q", "pretrain", *options, "--threads", 2], sizes.timeout_s)
    else:
        launcher = [TORCHRUN, "--nnodes", 1, "--nproc-per-node", processes, "--master-addr", "127.0.0.1",
                    "--master-port", free_port(), "-m", "contextemb.cli.main", "-q", "pretrain"]
        env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
        run([*launcher, *options, "--distributed", "--threads", 1], sizes.timeout_s, env=env)
    return training_rate(metrics(out), "forward", log_every)


def scaling(report: Report, sizes: ScalingSizes, work: Path) -> None:
    if not TORCHRUN.exists():
        report.skipped("scale-out", f"no torchrun beside {sys.executable}")
        return
    corpus = first_lines(NSMC_CORPUS, sizes.lines, work / "corpus.txt")
    rates: dict[int, dict[int, float]] = {1: {}, 2: {}}  # processes -> repeat -> pieces/s
    for repeat in range(sizes.repeats):
        for processes in (1, 2):
            name = "1 process, 2 threads" if processes == 1 else "2 processes (torchrun, gloo), 1 thread each"
            try:
                rates[processes][repeat] = pieces_per_s(processes, corpus, work / f"run-{repeat}-{processes}", sizes)
            except PartFailed as error:
                report.note(f"scale-out, {name}, run {repeat + 1}: failed — {error}")
                continue
            report.figure(f"pretraining forward, {name}, run {repeat + 1}, pieces/s", rates[processes][repeat])
    ratios = [rates[2][k] / rates[1][k] for k in rates[2] if k in rates[1]]
    for processes, by_repeat in rates.items():
        if by_repeat and sizes.repeats > 1:
            report.figure(f"pretraining forward, {processes} process(es), pieces/s", summary([*by_repeat.values()]))
    if ratios:
        report.figure("2 processes / 1 process, pieces/s (pairwise, same repeat)", summary(ratios), 2, "×")
