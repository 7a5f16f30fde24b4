"""Scores on the development homograph set: per-layer 1-NN sense accuracy (evaluation.probe) and WiC-style
pair accuracy (evaluation.wic), both from one embedding pass over the set's occurrences.

Pairs come from `wic.pairs_from_probes`: each word's sentences split in two halves, same-sense and as many
different-sense pairs drawn within each half (so each half is balanced and chance is 0.5); the threshold on
each layer's cosine is chosen on one half and scored on the other.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import numpy as np

from contextemb.embedder import Embedder

from .dev_homographs import load_dev_probes
from .probe import BOOTSTRAP_SAMPLES, ProbeRow, WordVectors, run_probes
from .wic import WicResult, evaluate_wic, pairs_from_probes


class PairReport(NamedTuple):
    results: list[WicResult]
    train_pairs: int
    test_pairs: int


class DevSetReport(NamedTuple):
    rows: list[ProbeRow]  # 1-NN and the other sense metrics, per word x representation
    pairs: PairReport


class _PrecomputedSpans:
    """Stands in for an Embedder in wic.evaluate_wic: answers embed_spans from vectors already computed,
    so the pairs (each occurrence appears in many) cost no second embedding pass."""

    def __init__(self, grouped: dict[str, WordVectors]):
        self.vectors = {}
        for word_vectors in grouped.values():
            for index, probe in enumerate(word_vectors.probes):
                self.vectors[(probe.text, probe.start, probe.end)] = word_vectors.contextual[:, index]  # (layers, dim)

    def embed_spans(self, items: Sequence[tuple[str, int, int]], batch_size: int = 0) -> list[np.ndarray]:
        return [self.vectors[tuple(item)] for item in items]


def pair_accuracy(grouped: dict[str, WordVectors], seed: int = 0) -> PairReport:
    """Per-layer (and mix, logistic) pair accuracy from the vectors `probe.run_probes` returned."""
    probes = [probe for word_vectors in grouped.values() for probe in word_vectors.probes]
    train, test = pairs_from_probes(probes, seed=seed)
    return PairReport(evaluate_wic(_PrecomputedSpans(grouped), train, test), len(train), len(test))


def evaluate_dev_set(embedder: Embedder, static=None, samples: int = BOOTSTRAP_SAMPLES,
                     word: Optional[str] = None, seed: int = 0) -> DevSetReport:
    """Both scores on the development set, its text read from the shared data (see dev_homographs)."""
    rows, grouped = run_probes(embedder, load_dev_probes(word=word), static, samples=samples)
    return DevSetReport(rows, pair_accuracy(grouped, seed=seed))


def format_pairs(report: PairReport) -> str:
    lines = [f"pair accuracy ({report.train_pairs} pairs choose each threshold, {report.test_pairs} pairs score it; "
             "balanced, chance 0.5):"]
    for result in report.results:
        threshold = "" if result.threshold is None else f"threshold {result.threshold:+.3f}"
        train = "" if np.isnan(result.train_accuracy) else f"fit {result.train_accuracy:.3f}"
        lines.append(f"  {result.representation:22s} {threshold:18s} {train:9s} accuracy {result.test_accuracy:.3f}")
    return "\n".join(lines)
