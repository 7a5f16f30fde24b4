"""Embedding speed: NSMC test reviews to HDF5 (all layers) with the packaged model, in a fresh process per run.

The precision paths (float32; int8 where the CPU has AVX2; bf16 where it has native bf16) alternate run by run,
so their ratios are side by side. Each run reports the embedding time (model loaded, the export alone), the whole
process's wall time and its peak RSS.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from benchmarks.common import PartFailed, nsmc_reviews, run
from benchmarks.paths import PrecisionPath, runnable
from benchmarks.report import Report, summary
from contextemb.cpu_features import CpuFeatures

# int8 through quantize=True: the spelling every version of load() reads
EMBED_SCRIPT = """
import resource, sys, time
import contextemb
from contextemb.export import export_embeddings
model, source, out, precision = sys.argv[1:5]
start = time.perf_counter()
options = {"quantize": True} if precision == "int8" else {"precision": precision}
embedder = contextemb.load(model, **options)
loaded = time.perf_counter()
export_embeddings(embedder, source, out, layers="all", force=True, progress=False)
done = time.perf_counter()
print(loaded - start, done - loaded, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@dataclass(frozen=True)
class EmbedSizes:
    reviews: Optional[int]  # first non-empty NSMC test reviews; None: all 50,000
    repeats: int
    timeout_s: float  # one run


@dataclass(frozen=True)
class EmbedRun:
    load_s: float
    embed_s: float  # export_embeddings alone
    process_s: float  # the whole process: interpreter, imports, load, export
    peak_rss_mb: float


def embed_once(model: str, source: Path, out: Path, precision: PrecisionPath, timeout_s: float,
               env: Optional[dict] = None) -> EmbedRun:
    start = time.perf_counter()
    stdout = run([sys.executable, "-c", EMBED_SCRIPT, model, source, out, precision], timeout_s, env=env)
    process_s = time.perf_counter() - start
    load_s, embed_s, maxrss_kb = stdout.split()[-3:]
    return EmbedRun(float(load_s), float(embed_s), process_s, int(maxrss_kb) / 1024)


def embedding(report: Report, sizes: EmbedSizes, features: CpuFeatures, model: str, work: Path,
              precisions: tuple[PrecisionPath, ...] = ("float32", "int8", "bf16")) -> dict[str, list[EmbedRun]]:
    """Report each run as it finishes, then medians and pairwise speed-ups over float32; the runs by precision."""
    source = nsmc_reviews(sizes.reviews, work / "reviews.txt")
    sentences = sum(1 for _ in open(source, encoding="utf-8"))
    words = sum(len(line.split()) for line in open(source, encoding="utf-8"))
    report.note(f"texts: the first {sentences:,} non-empty NSMC test reviews ({words:,} words), model {model}")
    precisions, skipped = runnable(precisions, features)
    for precision, reason in skipped.items():
        report.skipped(f"embedding in {precision}", reason)
    runs: dict[str, dict[int, EmbedRun]] = {precision: {} for precision in precisions}
    for repeat in range(sizes.repeats):
        for precision in precisions:
            try:
                result = embed_once(model, source, work / "out.h5", precision, sizes.timeout_s)
            except PartFailed as error:
                report.note(f"embedding, {precision}, run {repeat + 1}: failed — {error}")
                continue
            runs[precision][repeat] = result
            report.figure(f"embedding, {precision}, run {repeat + 1}",
                          f"{sentences / result.embed_s:,.0f} sentences/s ({result.embed_s:.1f} s embedding, "
                          f"{result.process_s:.1f} s whole process, peak RSS {result.peak_rss_mb:,.0f} MB)")
    for precision, by_repeat in runs.items():
        if len(by_repeat) > 1:  # one run's figures are in its line above
            done = list(by_repeat.values())
            report.figure(f"embedding, {precision}, sentences/s", summary([sentences / r.embed_s for r in done]))
            report.figure(f"embedding, {precision}, words/s", summary([words / r.embed_s for r in done]))
            report.figure(f"embedding, {precision}, whole process, s", summary([r.process_s for r in done]), 1)
            report.figure(f"embedding, {precision}, peak RSS, MB", summary([r.peak_rss_mb for r in done]))
    for precision in [p for p in precisions if p != "float32" and "float32" in runs]:
        pairs = [(runs["float32"][k].embed_s, r.embed_s) for k, r in runs[precision].items() if k in runs["float32"]]
        if pairs:
            report.figure(f"embedding, {precision} speed-up over float32 (pairwise, same repeat)",
                          summary([a / b for a, b in pairs]), 2, "×")
    return {precision: list(by_repeat.values()) for precision, by_repeat in runs.items()}
