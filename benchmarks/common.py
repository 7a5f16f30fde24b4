"""What the benchmark parts share: the data they read, the texts they cut from it, and how they run a command."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CONTEXTEMB_DATA", REPO.parent / "shared" / "data"))
NSMC_CORPUS = DATA / "nsmc" / "corpus.txt"
NSMC_TEST = DATA / "nsmc" / "ratings_test.tsv"
CLI = [sys.executable, "-m", "contextemb.cli.main"]
TOKENIZER_MODEL = "ko-nsmc-small"  # its tokenizer (8k pieces, the whole NSMC corpus) and the default config


class PartFailed(Exception):
    """A measured command failed or ran past its time limit: the part reports it and the run goes on."""


def first_lines(source: Path, lines: Optional[int], out: Path) -> Path:
    """The first `lines` lines of `source` (all of them for None) written to `out`."""
    with open(source, encoding="utf-8") as text, open(out, "w", encoding="utf-8") as written:
        for index, line in enumerate(text):
            if lines is not None and index >= lines:
                break
            written.write(line)
    return out


def nsmc_reviews(count: Optional[int], out: Path) -> Path:
    """The first `count` non-empty NSMC test reviews (all for None), one per line, stripped, as Flair's
    embedding script reads them, written to `out`."""
    with open(NSMC_TEST, encoding="utf-8") as tsv, open(out, "w", encoding="utf-8") as written:
        next(tsv)  # header
        kept = 0
        for row in tsv:
            if count is not None and kept >= count:
                break
            review = row.rstrip("\n").split("\t")[1].strip()
            if review:
                written.write(review + "\n")
                kept += 1
    return out


def seeded_model_dir(out: Path) -> Path:
    """A model directory holding only the packaged model's config.json and tokenizer.model.

    `contextemb pretrain --resume` on it trains the default architecture from scratch with that tokenizer, so no
    part spends its time (about a minute on 2 cores) training a sentencepiece model.
    """
    from contextemb.packaged import resolve_model

    source = resolve_model(TOKENIZER_MODEL)
    out.mkdir(parents=True)
    for name in ("config.json", "tokenizer.model"):
        shutil.copy(source / name, out / name)
    return out


def run(command: Sequence[str], timeout_s: float, *, env: Optional[dict] = None,
        cwd: Optional[Path] = None) -> str:
    """Run `command`; its stdout. A failure or a run past `timeout_s` raises PartFailed with stderr's tail.

    The command runs in a session of its own, so a timeout stops every process it started (the training
    workers, torchrun's ranks, the child of a peak-RSS wrapper), not just the first.
    """
    process = subprocess.Popen([str(part) for part in command], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env, cwd=cwd or REPO, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop_session(process)
        raise PartFailed(f"{Path(str(command[0])).name} ... {command[-1]} ran past {timeout_s:.0f} s and was stopped")
    except BaseException:  # Ctrl-C or SIGTERM to the benchmark: leave nothing of it running
        stop_session(process, grace_s=5)
        raise
    if process.returncode != 0:
        tail = " | ".join(stderr.strip().splitlines()[-3:])
        raise PartFailed(f"exit code {process.returncode}: {tail}")
    return stdout


def stop_session(process: subprocess.Popen, grace_s: float = 15) -> None:
    """SIGTERM to the process's whole session (training checkpoints and stops), SIGKILL after `grace_s`."""
    for signal_number in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, signal_number)
        except ProcessLookupError:
            return
        try:
            process.communicate(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def metrics(model_dir: Path) -> list[dict]:
    with open(model_dir / "metrics.jsonl", encoding="utf-8") as records:
        return [json.loads(line) for line in records if line.strip()]


def training_rate(records: list[dict], direction: str, warmup_steps: int) -> float:
    """Mean pieces/s of `direction`'s logged windows after `warmup_steps` (the first window holds the allocator's
    warm-up and the first pool's tokenising)."""
    timed = [r["tokens_per_s"] for r in records
             if r.get("direction") == direction and "loss" in r and r["step"] > warmup_steps]
    if not timed:
        raise PartFailed(f"no {direction} training records after step {warmup_steps} in metrics.jsonl")
    return sum(timed) / len(timed)


def characters_per_piece(corpus: Path, model_dir: Path) -> float:
    """Characters (with one line break per line) per piece (with one </s> per line) of `corpus`."""
    from contextemb.tokenization import Tokenizer

    tokenizer = Tokenizer.from_file(model_dir / "tokenizer.model")
    texts = [line.strip() for line in open(corpus, encoding="utf-8") if line.strip()]
    pieces = sum(len(ids) + 1 for ids in tokenizer.encode(texts))
    return sum(len(text) + 1 for text in texts) / pieces
