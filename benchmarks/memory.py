"""Memory against corpus size: peak RSS of forward-model pretraining over a corpus and over it ten times over.

The reader streams the corpus a pool at a time, so ten times the text should give the same peak. Each run starts
from the packaged tokenizer (`--resume` on a seeded directory); the tokenizer's own training, which reads at most
1 M sampled lines, is measured apart where asked.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from benchmarks.common import CLI, NSMC_CORPUS, PartFailed, first_lines, run, seeded_model_dir
from benchmarks.report import Report, summary

PEAK_RSS_SCRIPT = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
                   "stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


@dataclass(frozen=True)
class MemorySizes:
    lines: Optional[int]  # first lines of the NSMC corpus; None: all of it
    steps: int
    repeats: int
    tokenizer: bool  # also measure training a tokenizer on the corpus
    timeout_s: float


def peak_rss_mb(command: list, timeout_s: float) -> float:
    """The largest peak RSS among the processes of `command` (run in a fresh process tree), MB."""
    return int(run([sys.executable, "-c", PEAK_RSS_SCRIPT, *command], timeout_s).split()[-1]) / 1024


def memory_vs_corpus(report: Report, sizes: MemorySizes, work: Path) -> None:
    once = first_lines(NSMC_CORPUS, sizes.lines, work / "corpus.txt")
    tenfold = work / "corpus-x10.txt"
    with open(tenfold, "wb") as out:
        for _ in range(10):
            with open(once, "rb") as source:
                shutil.copyfileobj(source, out)
    size_mb = once.stat().st_size / 2**20
    pretrain = [*CLI, "-q", "pretrain"]
    if sizes.tokenizer:
        try:
            rss = peak_rss_mb(pretrain + [once, "--out", work / "tokenizer", "--direction", "forward", "--max-steps",
                                          1, "--no-progress", "--precision", "float32"], sizes.timeout_s)
            report.figure(f"tokenizer training on the corpus ({size_mb:,.1f} MB) and one step, peak RSS, MB", rss)
        except PartFailed as error:
            report.note(f"tokenizer training: failed — {error}")
    measured: dict[str, list[float]] = {"corpus": [], "corpus x10": []}
    for repeat in range(sizes.repeats):
        for name, corpus in (("corpus", once), ("corpus x10", tenfold)):
            out = seeded_model_dir(work / f"run-{repeat}-{name.replace(' ', '')}")
            try:
                rss = peak_rss_mb(pretrain + [corpus, "--out", out, "--resume", "--direction", "forward",
                                              "--max-steps", sizes.steps, "--no-progress", "--eval-every", 10**6,
                                              "--checkpoint-every", 10**6, "--precision", "float32"], sizes.timeout_s)
            except PartFailed as error:
                report.note(f"memory, {name}, run {repeat + 1}: failed — {error}")
                continue
            measured[name].append(rss)
            report.figure(f"pretraining {sizes.steps} steps (forward) over the {name} "
                          f"({corpus.stat().st_size / 2**20:,.1f} MB), run {repeat + 1}, peak RSS, MB", rss)
    for name, values in measured.items():
        if values and sizes.repeats > 1:
            report.figure(f"pretraining over the {name}, peak RSS, MB", summary(values))
