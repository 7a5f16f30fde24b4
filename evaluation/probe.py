"""Homograph probes: do a word's vectors group by sense? Per layer, for an even layer mix, and for Word2Vec.

For the occurrences of one word (vectors (n, dim), sense labels (n,)):
- 1-NN sense accuracy, leave one out, by cosine; ties (identical vectors, as a static embedding gives) are
  broken uniformly at random, in expectation, so a static embedding scores exactly chance;
- chance: the expected accuracy of a random neighbour, mean over i of (same-sense others) / (n - 1);
- mean cosine within a sense and across senses, and their gap;
- silhouette score of the sense clusters (scikit-learn, cosine distance);
- 95% bootstrap intervals (occurrences resampled) for the accuracy and the gap.
"""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple, Optional, Sequence

import numpy as np
from sklearn.metrics import silhouette_score

from contextemb.embedder import Embedder

from .cosine import cosine_matrix
from .probe_sets import Probe

BOOTSTRAP_SAMPLES = 1000


class SenseMetrics(NamedTuple):
    accuracy: float
    accuracy_ci: tuple[float, float]
    chance: float
    within: float
    cross: float
    gap: float
    gap_ci: tuple[float, float]
    silhouette: float


class ProbeRow(NamedTuple):
    word: str
    representation: str  # "layer 0", "layer 1", ..., "mix", "word2vec"
    occurrences: int
    senses: int
    metrics: SenseMetrics


def nearest_neighbour_hits(similarity: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(n,) expected 1-NN correctness of each occurrence, leaving it out; ties share the credit."""
    n = len(labels)
    hits = np.zeros(n)
    for i in range(n):
        others = np.delete(np.arange(n), i)
        scores = similarity[i, others]
        best = others[np.isclose(scores, scores.max(), rtol=0, atol=1e-6)]
        hits[i] = np.mean(labels[best] == labels[i])
    return hits


def chance_level(labels: np.ndarray) -> float:
    n = len(labels)
    same = np.array([(labels == label).sum() - 1 for label in labels])
    return float(np.mean(same / (n - 1)))


def _within_cross(similarity: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    n = len(labels)
    upper = ~np.tri(n, dtype=bool)  # each unordered pair once, no self-pairs
    same = (labels[:, None] == labels[None, :]) & upper
    different = (labels[:, None] != labels[None, :]) & upper
    within = float(similarity[same].mean()) if same.any() else float("nan")
    cross = float(similarity[different].mean()) if different.any() else float("nan")
    return within, cross


def sense_metrics(vectors: np.ndarray, labels: Sequence[str], seed: int = 0,
                  samples: int = BOOTSTRAP_SAMPLES) -> SenseMetrics:
    labels = np.asarray(labels)
    similarity = cosine_matrix(np.asarray(vectors, dtype=np.float64))
    hits = nearest_neighbour_hits(similarity, labels)
    within, cross = _within_cross(similarity, labels)
    rng = np.random.default_rng(seed)
    n = len(labels)
    accuracies, gaps = [], []
    for _ in range(samples):
        index = rng.integers(0, n, n)
        accuracies.append(hits[index].mean())
        sample_within, sample_cross = _within_cross(similarity[np.ix_(index, index)], labels[index])
        gaps.append(sample_within - sample_cross)
    distances = np.clip(1.0 - similarity, 0.0, 2.0)
    distances[distances < 1e-6] = 0.0  # identical vectors (a static embedding) are at distance 0, not float noise
    np.fill_diagonal(distances, 0.0)
    separable = len(set(labels)) > 1 and distances.max() > 0
    silhouette = float(silhouette_score(distances, labels, metric="precomputed")) if separable else 0.0
    return SenseMetrics(float(hits.mean()), _interval(accuracies), chance_level(labels), within, cross,
                        within - cross, _interval(gaps), silhouette)


def _interval(values: list[float]) -> tuple[float, float]:
    finite = np.asarray([v for v in values if np.isfinite(v)])
    if not len(finite):
        return (float("nan"), float("nan"))
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def group_by_word(probes: Sequence[Probe]) -> dict[str, list[int]]:
    """word -> the indices of its occurrences in `probes`, words in order of first occurrence."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, probe in enumerate(probes):
        groups[probe.word].append(index)
    return dict(groups)


class WordVectors(NamedTuple):
    """Vectors of one word's occurrences: contextual (layers, n, dim) and static (n, dim) or None."""

    probes: list[Probe]
    contextual: np.ndarray
    static: Optional[np.ndarray]


def probe_vectors(embedder: Embedder, probes: Sequence[Probe], static=None) -> dict[str, WordVectors]:
    """Contextual vectors of every probe occurrence (one batched pass), grouped by word."""
    spans = embedder.embed_spans([(p.text, p.start, p.end) for p in probes])
    result = {}
    for word, indices in group_by_word(probes).items():
        contextual = np.stack([spans[i] for i in indices], axis=1)  # (layers, n, dim)
        static_vectors = None if static is None else np.stack([static.vector(word)] * len(indices))
        result[word] = WordVectors([probes[i] for i in indices], contextual, static_vectors)
    return result


def representations(vectors: WordVectors) -> dict[str, np.ndarray]:
    """name -> (n, dim): each layer, the even mix (mean of the layers), and word2vec when given."""
    named = {f"layer {k}": vectors.contextual[k] for k in range(vectors.contextual.shape[0])}
    named["mix"] = vectors.contextual.mean(axis=0)
    if vectors.static is not None:
        named["word2vec"] = vectors.static
    return named


def run_probes(embedder: Embedder, probes: Sequence[Probe], static=None,
               samples: int = BOOTSTRAP_SAMPLES) -> tuple[list[ProbeRow], dict[str, WordVectors]]:
    """Metrics per word x representation (see the module docstring), and the vectors they came from."""
    grouped = probe_vectors(embedder, probes, static)
    rows = []
    for word, vectors in grouped.items():
        labels = [p.sense for p in vectors.probes]
        if len(set(labels)) < 2 or len(labels) < 3:
            continue  # one sense, or too few occurrences: nothing to tell apart
        for name, matrix in representations(vectors).items():
            rows.append(ProbeRow(word, name, len(labels), len(set(labels)), sense_metrics(matrix, labels, samples=samples)))
    return rows, grouped


def summarise(rows: Sequence[ProbeRow]) -> dict[str, dict[str, float]]:
    """Per representation, the mean over words of accuracy, chance and gap (each word counts once)."""
    table: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        for key in ("accuracy", "chance", "gap", "silhouette"):
            table[row.representation][key].append(getattr(row.metrics, key))
    return {name: {key: float(np.mean(values)) for key, values in columns.items()} for name, columns in table.items()}


def format_table(rows: Sequence[ProbeRow]) -> str:
    """A plain-text table: one block per word, one line per representation."""
    lines = []
    current = None
    header = (f"{'word':8s} {'vectors':9s} {'n':>3s} {'1-NN acc':>8s} {'95% CI':>13s} {'chance':>6s} "
              f"{'within':>6s} {'cross':>6s} {'gap':>6s} {'95% CI':>15s} {'silh.':>6s}")
    lines.append(header)
    for row in rows:
        m = row.metrics
        if row.word != current:
            lines.append("-" * len(header))
            current = row.word
        lines.append(f"{row.word:8s} {row.representation:9s} {row.occurrences:3d} {m.accuracy:8.3f} "
                     f"[{m.accuracy_ci[0]:.2f}, {m.accuracy_ci[1]:.2f}] {m.chance:6.3f} {m.within:6.3f} "
                     f"{m.cross:6.3f} {m.gap:+6.3f} [{m.gap_ci[0]:+.3f}, {m.gap_ci[1]:+.3f}] {m.silhouette:+6.3f}")
    return "\n".join(lines)
