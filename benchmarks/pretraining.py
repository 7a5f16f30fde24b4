"""Pretraining speed: `contextemb pretrain` of the default configuration, both directions in parallel.

Each run is a fresh CLI process on the first lines of the NSMC corpus, started from the packaged model's tokenizer
(so no run trains one); pieces/s per direction are read from its metrics.jsonl, without the first logged window.
The precision variants (float32; bf16 where the CPU has it natively) and, given a baseline commit, that commit's
code, run in turn in every repeat, so their ratios are side by side.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from benchmarks.common import (CLI, NSMC_CORPUS, REPO, PartFailed, characters_per_piece, first_lines, metrics, run,
                               seeded_model_dir, training_rate)
from benchmarks.paths import runnable
from benchmarks.report import Report, summary
from benchmarks.yardsticks import Yardsticks
from contextemb.cpu_features import CpuFeatures

DIRECTIONS = ("forward", "backward")


@dataclass(frozen=True)
class PretrainSizes:
    lines: int  # first lines of the NSMC corpus
    steps: int  # optimizer steps per direction and run
    log_every: int  # the first window (warm-up) is left out of the rate
    repeats: int
    flop_batches: int  # full batches the FLOP count runs over
    timeout_s: float  # one run


@dataclass(frozen=True)
class Variant:
    name: str
    command: list[str]  # up to the corpus argument
    env: Optional[dict]
    extra: list[str]
    seeded: bool  # starts from the packaged tokenizer (--resume on a seeded directory)


def baseline_variant(commit: str, directory: Path) -> Variant:
    """`commit`'s code (float32), checked out with git archive and laid out as installed.

    The old `contextemb` (cli/, pretrain/, evaluation/ inside the package) is put first on the path of a Python
    started with -S, so the editable install of this tree stays out. It trains its own tokenizer: its config
    format may not read today's config.json.
    """
    archive = subprocess.run(["git", "archive", commit], cwd=REPO, check=True, capture_output=True).stdout
    source = directory / "source"
    source.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    package = directory / "path" / "contextemb"
    shutil.copytree(source / "contextemb", package)
    for part in ("cli", "pretrain", "evaluation"):
        shutil.copytree(source / part, package / part)
    installed = sysconfig.get_paths()
    path = os.pathsep.join([str(directory / "path"), installed["purelib"], installed["platlib"]])
    return Variant(f"baseline {commit} float32", [sys.executable, "-S", "-m", "contextemb.cli.main"],
                   {**os.environ, "PYTHONPATH": path}, [], seeded=False)


def one_run(variant: Variant, corpus: Path, out: Path, sizes: PretrainSizes) -> dict[str, float]:
    """pieces/s per direction of one run of `variant`."""
    if variant.seeded:
        seeded_model_dir(out)
    command = [*variant.command, "-q", "pretrain", corpus, "--out", out, "--max-steps", sizes.steps, "--no-progress",
               "--log-every", sizes.log_every, "--eval-every", 10**6, "--checkpoint-every", 10**6, *variant.extra]
    run(command + (["--resume"] if variant.seeded else []), sizes.timeout_s, env=variant.env)
    records = metrics(out)
    return {direction: training_rate(records, direction, sizes.log_every) for direction in DIRECTIONS}


def flops_per_piece(model_dir: Path, corpus: Path, batches: int, lines: int = 2000) -> float:
    """FLOPs of training (forward + backward) per piece, counted by torch.utils.flop_counter on the forward model.

    Counted over `batches` full batches (batch_tokens pieces of lines of similar length, as training's length-
    bucketed pools give) from the middle of `corpus`'s first `lines` lines sorted by length. The char-CNN runs once
    per distinct piece of a batch, so a smaller batch would cost more per piece.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from contextemb.config import read_config
    from contextemb.model_dir import build_language_model
    from contextemb.heldout import evaluation_batches
    from contextemb.tokenization import Tokenizer

    config = read_config(model_dir / "config.json")
    tokenizer = Tokenizer.from_file(model_dir / "tokenizer.model")
    model = build_language_model(config, tokenizer).train()
    # the fast float32 CPU path (contextemb.projected_lstm, oneDNN products) does the same arithmetic through
    # operators the counter does not see: count on torch's own path
    model.fast_cpu_training = False
    every = evaluation_batches(corpus, tokenizer, "forward", max_pieces=config.lm.max_pieces,
                               batch_tokens=config.train.batch_tokens, max_lines=lines)
    middle = len(every) // 2
    counter, pieces = FlopCounterMode(display=False), 0
    with counter:
        for batch in every[max(0, middle - batches // 2): middle - batches // 2 + batches]:
            loss = model(batch.piece_ids, batch.targets)
            loss.mean.backward()
            pieces += loss.count
    return counter.get_total_flops() / pieces


def pretraining(report: Report, sizes: PretrainSizes, features: CpuFeatures, work: Path,
                yardsticks: Yardsticks, baseline: Optional[str] = None) -> None:
    """Report pieces/s of each variant as it is measured, then their medians and ratios."""
    corpus = first_lines(NSMC_CORPUS, sizes.lines, work / "corpus.txt")
    precisions, skipped = runnable(("float32", "bf16"), features)
    for precision, reason in skipped.items():
        report.skipped(f"pretraining in {precision}", reason)
    variants = [Variant(p, CLI, None, ["--precision", p], seeded=True) for p in precisions]
    if baseline:
        variants.insert(0, baseline_variant(baseline, work / "baseline"))
    totals: dict[str, dict[int, float]] = {variant.name: {} for variant in variants}  # name -> repeat -> pieces/s
    for repeat in range(sizes.repeats):
        for index, variant in enumerate(variants):
            try:
                rates = one_run(variant, corpus, work / f"run-{repeat}-{index}", sizes)
            except PartFailed as error:
                report.note(f"pretraining, {variant.name}, run {repeat + 1}: failed — {error}")
                continue
            totals[variant.name][repeat] = sum(rates.values())
            report.figure(f"pretraining, {variant.name}, run {repeat + 1}, pieces/s",
                          f"forward {rates['forward']:,.0f}, backward {rates['backward']:,.0f}, "
                          f"both {sum(rates.values()):,.0f}")
    for name, values in totals.items():
        if len(values) > 1:  # one run's figure is in its line above
            report.figure(f"pretraining, {name}, both directions in parallel, pieces/s", summary([*values.values()]))
    report_ratios(report, totals, baseline)
    if totals.get("float32"):
        report_float32_efficiency(report, summary([*totals["float32"].values()]).median, corpus,
                                  next(work.glob("run-*-*")), sizes, yardsticks)


def report_ratios(report: Report, totals: dict[str, dict[int, float]], baseline: Optional[str]) -> None:
    """Pairwise ratios (same repeat) of bf16 to float32 and of this tree to the baseline."""
    def pairwise(numerator: str, denominator: str) -> None:
        top, bottom = totals.get(numerator, {}), totals.get(denominator, {})
        ratios = [top[repeat] / bottom[repeat] for repeat in top if repeat in bottom]
        if ratios:
            report.figure(f"pretraining, {numerator} / {denominator}, pieces/s (pairwise, same repeat)",
                          summary(ratios), 2, "×")

    pairwise("bf16", "float32")
    if baseline:
        for name in ("float32", "bf16"):
            pairwise(name, f"baseline {baseline} float32")


def report_float32_efficiency(report: Report, pieces_per_s: float, corpus: Path, model_dir: Path,
                              sizes: PretrainSizes, yardsticks: Yardsticks) -> None:
    """Characters/s, the FLOP rate achieved against the matmul rate, and pieces/s against the plain LSTM step."""
    chars = characters_per_piece(corpus, model_dir)
    report.figure(f"pretraining, float32, both directions, characters/s ({chars:.2f} characters per piece)",
                  pieces_per_s * chars)
    flops = flops_per_piece(model_dir, corpus, sizes.flop_batches)
    report.figure("training FLOPs per piece (forward + backward, counted), M", flops / 1e6, 2)
    achieved = pieces_per_s * flops / 1e9
    report.figure("achieved GFLOP/s in float32, both directions", achieved, 1)
    if yardsticks.matmul_gflops:
        report.figure("achieved / float32 matmul rate", f"{achieved / yardsticks.matmul_gflops:.1%}")
    if yardsticks.lstm_tokens_per_s:
        report.figure("float32 pieces/s, both directions / plain nn.LSTM step tokens/s",
                      pieces_per_s / yardsticks.lstm_tokens_per_s, 2)
