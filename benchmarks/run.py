"""Speed and memory benchmarks, run by hand (never by the test suite):

    python -m benchmarks.run --quick                     # small sizes, meant for 3 minutes on 2 idle cores
    python -m benchmarks.run [--only matmul,lstm,pretrain,embed,memory,scaling] [--peers ~/venv-peers/bin/python]

The report starts with the CPU's capability (AVX2, AVX-512, BF16, VNNI, AMX); precision paths this CPU cannot run
natively (bf16 without AVX-512 BF16 or AMX, int8 without AVX2) are skipped with a line saying so. Every figure is
printed the moment it is measured and appended to the results file, benchmarks/results/DATE-CPUKIND-WHAT.md, so
a stopped run keeps what it measured. Parts:

- matmul: float32, bf16 and int8 2048^3 matrix-product rates — the machine's yardsticks;
- lstm: a plain nn.LSTM LM training step of the default sizes, tokens/s — the reference step;
- pretrain: `contextemb pretrain`, default configuration, both directions in parallel, pieces/s per precision
  (benchmarks.pretraining), FLOPs per piece and the share of the matmul rate they reach;
- embed: NSMC test reviews to HDF5, all layers, per precision (benchmarks.embedding);
- memory: peak RSS of pretraining over a corpus and over it ten times over (benchmarks.memory);
- scaling: one process against torchrun with two (benchmarks.scaling);
- with --peers PYTHON (a Python with flair and gensim): Flair's character LM and embeddings beside contextemb's,
  as ratios (benchmarks.peers).

The machine may be shared and its speed moves from day to day: compare figures only as ratios taken in one run.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from benchmarks.common import REPO
from benchmarks.embedding import EmbedSizes, embedding
from benchmarks.memory import MemorySizes, memory_vs_corpus
from benchmarks.paths import runnable
from benchmarks.peers import PeerSizes, peers
from benchmarks.pretraining import PretrainSizes, pretraining
from benchmarks.report import Report, machine_load, results_path
from benchmarks.scaling import ScalingSizes, scaling
from benchmarks.yardsticks import Yardsticks, matmul_rate, plain_lstm_step
from contextemb.cpu_features import CpuFeatures, cpu_features

PARTS = ("matmul", "lstm", "pretrain", "embed", "memory", "scaling")


@dataclass(frozen=True)
class Sizes:
    """How much each part measures; printed at the head of the report."""

    matmul_repeats: int
    lstm_repeats: int
    lstm_steps: int
    pretrain: PretrainSizes
    embed: EmbedSizes
    memory: MemorySizes
    scaling: ScalingSizes
    peers: PeerSizes


QUICK = Sizes(
    matmul_repeats=10, lstm_repeats=1, lstm_steps=10,
    pretrain=PretrainSizes(lines=5_000, steps=20, log_every=5, repeats=1, flop_batches=1, timeout_s=150),
    embed=EmbedSizes(reviews=1_000, repeats=1, timeout_s=120),
    memory=MemorySizes(lines=5_000, steps=5, repeats=1, tokenizer=False, timeout_s=120),
    scaling=ScalingSizes(lines=5_000, steps=40, log_every=10, repeats=1, timeout_s=300),
    peers=PeerSizes(seconds=30, reviews=1_000, repeats=1, timeout_s=120))
FULL = Sizes(
    matmul_repeats=30, lstm_repeats=3, lstm_steps=20,
    pretrain=PretrainSizes(lines=20_000, steps=80, log_every=10, repeats=3, flop_batches=5, timeout_s=600),
    embed=EmbedSizes(reviews=None, repeats=3, timeout_s=600),
    memory=MemorySizes(lines=None, steps=60, repeats=3, tokenizer=True, timeout_s=900),
    scaling=ScalingSizes(lines=20_000, steps=200, log_every=20, repeats=2, timeout_s=900),
    peers=PeerSizes(seconds=360, reviews=5_000, repeats=1, timeout_s=600))
QUICK_PARTS = ("matmul", "lstm", "pretrain", "embed", "memory")


def report_head(report: Report, features: CpuFeatures, sizes: Sizes, parts: list[str]) -> None:
    report.line(f"# contextemb benchmarks, {time.strftime('%Y-%m-%d %H:%M %Z')}")
    report.line()
    report.note(f"CPU: {features.summary()}")
    report.note(f"command: python -m benchmarks.run {shlex.join(sys.argv[1:])}")
    report.note(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
                f"Python {platform.python_version()}")
    report.note(f"parts: {', '.join(parts)}")
    report.note(f"code: {code_version()}")
    report.note(f"at the start: {machine_load()}")


def code_version() -> str:
    """The commit measured, and whether tracked files differed from it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                timeout=30).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                 capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (no git)"
    if not commit:
        return "unknown (not a git checkout)"
    return f"commit {commit}" + (" with uncommitted changes to tracked files" if changed else "")


def yardsticks(report: Report, sizes: Sizes, features: CpuFeatures, parts: list[str]) -> Yardsticks:
    matmul, lstm = None, None
    if "matmul" in parts:
        with report.part("matrix products, 2048^3, all threads"):
            report.note(f"size: {sizes.matmul_repeats} timed products per dtype (10 for int8), after 3 untimed")
            dtypes = {"float32": torch.float32, "bf16": torch.bfloat16, "int8": torch.int8}
            precisions, skipped = runnable(("float32", "bf16", "int8"), features)
            for precision in precisions:
                rate = matmul_rate(sizes.matmul_repeats if precision != "int8" else 10, dtypes[precision])
                matmul = rate.median if precision == "float32" else matmul
                report.figure(f"{precision} matmul, G{'OP' if precision == 'int8' else 'FLOP'}/s", rate, 1)
            for precision, reason in skipped.items():
                report.skipped(f"{precision} matmul", reason)
    if "lstm" in parts:
        with report.part("plain nn.LSTM LM training step (default sizes, 2,048 tokens, Adam), one process"):
            report.note(f"size: {sizes.lstm_repeats} run(s) of {sizes.lstm_steps} timed steps, after 3 untimed")
            rate = plain_lstm_step(sizes.lstm_repeats, sizes.lstm_steps)
            lstm = rate.median
            report.figure("plain nn.LSTM step, tokens/s", rate)
    return Yardsticks(matmul, lstm)


def part_dir(work: Path, name: str) -> Path:
    (work / name).mkdir(parents=True)
    return work / name


def run_parts(report: Report, sizes: Sizes, features: CpuFeatures, parts: list[str], args, work: Path) -> None:
    measured = yardsticks(report, sizes, features, parts)
    if "pretrain" in parts:
        with report.part("pretraining, default configuration, both directions in parallel"):
            report.note(f"size: {sizes.pretrain}")
            pretraining(report, sizes.pretrain, features, part_dir(work, "pretrain"), measured, args.baseline)
    if "embed" in parts:
        with report.part("embedding NSMC test reviews to HDF5, all layers"):
            report.note(f"size: {sizes.embed}")
            embedding(report, sizes.embed, features, args.model, part_dir(work, "embed"))
    if "memory" in parts:
        with report.part("memory against corpus size"):
            report.note(f"size: {sizes.memory}")
            memory_vs_corpus(report, sizes.memory, part_dir(work, "memory"))
    if "scaling" in parts:
        with report.part("scale-out on one machine: 1 process against 2 (torchrun, DDP over gloo)"):
            report.note(f"size: {sizes.scaling}")
            scaling(report, sizes.scaling, part_dir(work, "scaling"))
    if args.peers:
        with report.part("peers: Flair beside contextemb, same run"):
            report.note(f"size: {sizes.peers}")
            peers(report, args.peers, sizes.peers, features, args.model, part_dir(work, "peers"))


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, meant to finish in 3 minutes on 2 idle cores")
    parser.add_argument("--only", help=f"comma-separated parts of {','.join(PARTS)} "
                                       f"(default: all; with --quick: {','.join(QUICK_PARTS)})")
    parser.add_argument("--peers", metavar="PYTHON", help="a Python with flair and gensim: run the Flair peers too")
    parser.add_argument("--model", default="ko-nsmc-small", help="model for the embedding parts")
    parser.add_argument("--baseline", metavar="COMMIT", help="a commit whose pretraining runs beside this tree's")
    parser.add_argument("--out", type=Path, help="results file (default: benchmarks/results/DATE-CPUKIND-WHAT.md)")
    parser.add_argument("--json", type=Path, help="also append every figure as a JSON line to this file")
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(QUICK_PARTS if args.quick else PARTS)
    unknown = sorted(set(chosen) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    args.parts = [part for part in PARTS if part in chosen]
    return args


def main(argv: Optional[list[str]] = None, features: Optional[CpuFeatures] = None,
         sizes: Optional[Sizes] = None) -> Path:
    """Run the benchmarks; the results file. `features` and `sizes` replace the detected CPU and the sizes."""
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: the running command's processes are stopped and the report is closed
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    features = features or cpu_features()
    sizes = sizes or (QUICK if args.quick else FULL)
    what = ("quick" if args.quick else "full") + ("-" + "-".join(args.parts) if args.only else "")
    path = args.out or results_path(features.kind(), what + ("-peers" if args.peers else ""))
    report = Report(path, args.json)
    report_head(report, features, sizes, args.parts + (["peers"] if args.peers else []))
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="contextemb-bench-"))
    try:
        run_parts(report, sizes, features, args.parts, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        report.line(f"\n- finished in {time.perf_counter() - start:.0f} s; at the end: {machine_load()}")
    print(f"\nresults: {path}", flush=True)
    return path


if __name__ == "__main__":
    main()
