"""Scale-out on one machine: pieces/s of torchrun with 2 processes (DDP over gloo) of 1 thread each, against one
process with 1 thread (what adding a process gives) and one process with 2 threads (the same cores used by
threads instead); same corpus, same settings, forward direction, float32.

A 2-process step holds two batches (one per rank: the global batch a single process would step on with both), so
it takes half the steps to train on the same batches; the comparison is in pieces/s, summed over the ranks. The
runs alternate, one of each per repeat.

On a busy machine a 2-thread process slows down far more than two 1-thread ones (each thread waits at every
parallel region for the other, which may not be scheduled), so read these figures with the load beside them.
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


@dataclass(frozen=True)
class Layout:
    processes: int
    threads: int  # per process

    @property
    def name(self) -> str:
        threads = f"{self.threads} thread{'s' if self.threads > 1 else ''}"
        if self.processes == 1:
            return f"1 process, {threads}"
        return f"{self.processes} processes (torchrun, gloo), {threads} each"


LAYOUTS = (Layout(1, 1), Layout(1, 2), Layout(2, 1))


def pieces_per_s(layout: Layout, corpus: Path, out: Path, sizes: ScalingSizes) -> float:
    seeded_model_dir(out)
    log_every = max(1, sizes.log_every // layout.processes)
    options = [corpus, "--out", out, "--resume", "--direction", "forward", "--max-steps",
               sizes.steps // layout.processes, "--log-every", log_every, "--eval-every", 10**6,
               "--checkpoint-every", 10**6, "--no-progress", "--precision", "float32", "--threads", layout.threads]
    if layout.processes == 1:
        run([*CLI, "-q", "pretrain", *options], sizes.timeout_s)
    else:
        launcher = [TORCHRUN, "--nnodes", 1, "--nproc-per-node", layout.processes, "--master-addr", "127.0.0.1",
                    "--master-port", free_port(), "-m", "contextemb.cli.main", "-q", "pretrain"]
        env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": str(layout.threads)}
        run([*launcher, *options, "--distributed"], sizes.timeout_s, env=env)
    return training_rate(metrics(out), "forward", log_every)


def scaling(report: Report, sizes: ScalingSizes, work: Path) -> None:
    if not TORCHRUN.exists():
        report.skipped("scale-out", f"no torchrun beside {sys.executable}")
        return
    corpus = first_lines(NSMC_CORPUS, sizes.lines, work / "corpus.txt")
    rates: dict[Layout, dict[int, float]] = {layout: {} for layout in LAYOUTS}  # -> repeat -> pieces/s
    for repeat in range(sizes.repeats):
        for index, layout in enumerate(LAYOUTS):
            try:
                rates[layout][repeat] = pieces_per_s(layout, corpus, work / f"run-{repeat}-{index}", sizes)
            except PartFailed as error:
                report.note(f"scale-out, {layout.name}, run {repeat + 1}: failed — {error}")
                continue
            report.figure(f"pretraining forward, {layout.name}, run {repeat + 1}, pieces/s", rates[layout][repeat])
    for layout, by_repeat in rates.items():
        if len(by_repeat) > 1:
            report.figure(f"pretraining forward, {layout.name}, pieces/s", summary([*by_repeat.values()]))
    for base in LAYOUTS[:2]:
        top, bottom = rates[LAYOUTS[2]], rates[base]
        ratios = [top[k] / bottom[k] for k in top if k in bottom]
        if ratios:
            report.figure(f"{LAYOUTS[2].name} / {base.name}, pieces/s (pairwise, same repeat)", summary(ratios), 2,
                          "×")
