"""contextemb beside Flair (../shared/peers), in the same run: training rate, bits/char after equal time, embedding.

Needs a second Python with flair and gensim (`--peers ~/venv-peers/bin/python`; flair is never a dependency of
contextemb). Every figure is reported as a ratio to the peer's, measured in the same run.

- Training at equal cores per direction: `contextemb pretrain --direction both --threads 2` (one thread per
  direction) and Flair's character LM (`flair_lm.py`, hidden 512, held to one thread) start together and run
  the same wall time, so three threads share the cores equally. Both read the first 150,000 lines of the NSMC
  corpus; contextemb starts from the packaged tokenizer and Flair builds its character dictionary, both before
  their clocks start. Rates are characters/s per direction over the whole run.
  A Flair step holds 25,000 characters (batch 100 × sequence 250) and its clock is read between steps, so it
  may overrun the time by up to a step; each side's own training time is reported.
- Bits/char after that time: each model's held-out bits per character on the first 2,000 non-empty NSMC test
  reviews, as each scores them (line breaks counted as characters by both).
- Embedding: Flair's stacked forward + backward h512 embeddings (`flair_embed.py`, the model just trained) and
  `contextemb` with the packaged model (all layers to HDF5), on the same reviews, both with 2 threads; the time
  of the embedding loop alone, after loading.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.common import (CLI, DATA, NSMC_CORPUS, REPO, PartFailed, characters_per_piece, first_lines, metrics,
                               nsmc_reviews, run, seeded_model_dir, stop_session)
from benchmarks.embedding import embed_once
from benchmarks.paths import runnable
from benchmarks.report import Report, summary
from contextemb.cpu_features import CpuFeatures, choose_precision

PEERS = Path(os.environ.get("CONTEXTEMB_PEERS", REPO.parent / "shared" / "peers"))
THREADS_WRAPPER = Path(__file__).with_name("peer_threads.py")
FLAIR_LINES = 150_000  # flair_lm.py reads this many corpus lines
HELD_OUT = 2_000  # and scores this many test reviews
HIDDEN = 512


@dataclass(frozen=True)
class PeerSizes:
    seconds: float  # training time of each model
    reviews: int  # reviews embedded
    repeats: int  # embedding runs of each
    timeout_s: float  # one embedding run


@dataclass(frozen=True)
class RaceResult:
    flair: dict  # flair_lm.py's final JSON
    pieces_per_s: dict[str, float]  # contextemb, per direction, over the whole run
    seconds: dict[str, float]  # contextemb's training time, per direction
    bits_per_char: dict[str, float]  # contextemb, per direction, held-out


def peer_versions(python: str) -> str:
    """'flair X, gensim Y, torch Z' of the peers' Python; PartFailed if it lacks them."""
    code = "import flair, gensim, torch; print(f'flair {flair.__version__}, gensim {gensim.__version__}, " \
           "torch {torch.__version__}')"
    return run([python, "-c", code], 120).strip()


def race(python: str, seconds: float, corpus: Path, held_out: Path, work: Path) -> RaceResult:
    """Train contextemb (both directions, one thread each) and Flair (one thread) at once for `seconds`."""
    model_dir = seeded_model_dir(work / "contextemb")
    precision = choose_precision("auto", torch.device("cpu"), training=True)
    ours = [*CLI, "-q", "pretrain", corpus, "--out", model_dir, "--resume", "--direction", "both", "--threads", 2,
            "--max-seconds", seconds, "--valid", held_out, "--eval-every", 10**6, "--checkpoint-every", 10**6,
            "--log-every", 50, "--no-progress", "--precision", precision]
    theirs = [python, THREADS_WRAPPER, 1, PEERS / "flair_lm.py", HIDDEN, seconds, work / f"flair_h{HIDDEN}"]
    env = {**os.environ, "CONTEXTEMB_DATA": str(DATA)}
    logs = [open(work / name, "w") for name in ("contextemb.log", "flair.log")]
    processes = [subprocess.Popen([str(part) for part in command], stdout=log, stderr=subprocess.STDOUT, env=env,
                                  cwd=REPO, start_new_session=True) for command, log in zip((ours, theirs), logs)]
    try:
        codes = [process.wait(timeout=seconds + 600) for process in processes]
    except subprocess.TimeoutExpired:
        for process in processes:
            stop_session(process)
        raise PartFailed(f"the training race ran {seconds + 600:.0f} s past its end and was stopped")
    except BaseException:  # Ctrl-C or SIGTERM to the benchmark
        for process in processes:
            stop_session(process, grace_s=5)
        raise
    finally:
        for log in logs:
            log.close()
    for code, name in zip(codes, ("contextemb.log", "flair.log")):
        if code != 0:
            tail = " | ".join((work / name).read_text(errors="replace").strip().splitlines()[-3:])
            raise PartFailed(f"{name}: exit code {code}: {tail}")
    records = metrics(model_dir)
    last = {r["direction"]: r for r in records if "elapsed_s" in r}
    scored = {r["direction"]: r["valid_bpc"] for r in records if "valid_bpc" in r}
    return RaceResult(json.loads((work / f"flair_h{HIDDEN}.json").read_text()),
                      {d: last[d]["tokens"] / last[d]["elapsed_s"] for d in sorted(last)},
                      {d: last[d]["elapsed_s"] for d in sorted(last)}, {d: scored[d] for d in sorted(scored)})


def report_race(report: Report, result: RaceResult, chars_per_piece: float, precision: str) -> None:
    flair_rate, flair_bpc = result.flair["chars_per_s"], result.flair["heldout_bpc"]
    report.figure(f"Flair char LM h{HIDDEN}, 1 layer, one thread: training characters/s", float(flair_rate))
    report.figure(f"Flair held-out bits/char after {result.flair['seconds']:.0f} s of training", float(flair_bpc), 3)
    for direction, pieces_per_s in result.pieces_per_s.items():
        chars = pieces_per_s * chars_per_piece
        report.figure(f"contextemb {direction} ({precision}, one thread): training characters/s",
                      f"{chars:,.0f} ({pieces_per_s:,.0f} pieces/s × {chars_per_piece:.2f}) = "
                      f"{chars / flair_rate:.2f}× Flair's")
    for direction, bpc in result.bits_per_char.items():
        report.figure(f"contextemb {direction} held-out bits/char after {result.seconds[direction]:.0f} s of training",
                      f"{bpc:.3f} = {bpc / flair_bpc:.2f}× Flair's (lower is better)")


def embedding_against_flair(report: Report, python: str, sizes: PeerSizes, features: CpuFeatures,
                            flair_model: Path, model: str, work: Path) -> None:
    source = nsmc_reviews(sizes.reviews, work / "reviews.txt")
    flair_rates: list[float] = []
    for repeat in range(sizes.repeats):
        try:
            stdout = run([python, PEERS / "flair_embed.py", flair_model, sizes.reviews], sizes.timeout_s,
                         env={**os.environ, "CONTEXTEMB_DATA": str(DATA)})
        except PartFailed as error:
            report.note(f"Flair embedding, run {repeat + 1}: failed — {error}")
            continue
        flair_rates.append(json.loads(stdout.strip().splitlines()[-1])["sentences_per_s"])
        report.figure(f"Flair embeddings fwd + bwd h{HIDDEN}, run {repeat + 1}, sentences/s", flair_rates[-1], 1)
    precisions, skipped = runnable(("float32", "int8", "bf16"), features)
    for precision, reason in skipped.items():
        report.skipped(f"embedding in {precision} beside Flair", reason)
    two_threads = {**os.environ, "OMP_NUM_THREADS": "2"}  # Flair's script sets 2 threads
    for precision in precisions:
        rates = []
        for repeat in range(sizes.repeats):
            try:
                result = embed_once(model, source, work / "out.h5", precision, sizes.timeout_s, env=two_threads)
            except PartFailed as error:
                report.note(f"contextemb embedding, {precision}, run {repeat + 1}: failed — {error}")
                continue
            rates.append(sizes.reviews / result.embed_s)
            report.figure(f"contextemb {model} {precision}, run {repeat + 1}, sentences/s", rates[-1], 1)
        if rates and flair_rates:
            ratio = summary(rates).median / summary(flair_rates).median
            report.figure(f"embedding, contextemb {precision} / Flair, sentences/s (medians)", ratio, 2, "×")


def peers(report: Report, python: str, sizes: PeerSizes, features: CpuFeatures, model: str, work: Path) -> None:
    try:
        report.note(f"peers' Python {python}: {peer_versions(python)}")
    except PartFailed as error:
        report.skipped("the peer comparison", f"{python} cannot import flair, gensim and torch ({error})")
        return
    corpus = first_lines(NSMC_CORPUS, FLAIR_LINES, work / "corpus.txt")
    held_out = nsmc_reviews(HELD_OUT, work / "held-out.txt")
    precision = choose_precision("auto", torch.device("cpu"), training=True)
    report.note(f"training race: {sizes.seconds:.0f} s each, contextemb in {precision} (its automatic choice here)")
    try:
        result = race(python, sizes.seconds, corpus, held_out, work)
    except PartFailed as error:
        report.note(f"training race: failed — {error}")
        return
    report_race(report, result, characters_per_piece(corpus, work / "contextemb"), precision)
    embedding_against_flair(report, python, sizes, features, work / f"flair_h{HIDDEN}.pt", model, work)
