"""Probe plots: per word, a cosine heatmap of the occurrences grouped by sense and a 2-D PCA scatter coloured
by sense, for a contextual layer beside Word2Vec."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from contextemb.io import atomic_write

from .cosine import cosine_matrix
from .probe import WordVectors


def plot_probes(grouped: Mapping[str, WordVectors], out: Path, layer: int = -1) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import koreanize_matplotlib  # noqa: F401  (registers NanumGothic, so Hangul labels render)
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    words = list(grouped)
    has_static = any(v.static is not None for v in grouped.values())
    columns = 4 if has_static else 2
    figure, axes = plt.subplots(len(words), columns, figsize=(4.2 * columns, 3.8 * len(words)), squeeze=False)
    for row, word in enumerate(words):
        vectors = grouped[word]
        order = np.argsort([p.sense for p in vectors.probes], kind="stable")
        senses = [vectors.probes[i].sense for i in order]
        layer_index = layer if layer >= 0 else vectors.contextual.shape[0] + layer
        panels = [(f"layer {layer_index}", vectors.contextual[layer_index][order])]
        if has_static and vectors.static is not None:
            panels.append(("word2vec", vectors.static[order]))
        for column, (name, matrix) in enumerate(panels):
            _heatmap(axes[row][2 * column], matrix, senses, f"{word}: {name} cosine")
            _scatter(axes[row][2 * column + 1], matrix, senses, f"{word}: {name} PCA", PCA)
    figure.tight_layout()
    atomic_write(Path(out), lambda tmp: figure.savefig(tmp, dpi=80, format="png"))
    plt.close(figure)


def _heatmap(axis, matrix: np.ndarray, senses: list[str], title: str) -> None:
    similarity = cosine_matrix(matrix)
    low = float(similarity.min())
    image = axis.imshow(similarity, vmin=min(low, 0.999), vmax=1.0, cmap="viridis")  # contrast where the values are
    boundaries = [i for i in range(1, len(senses)) if senses[i] != senses[i - 1]]
    for boundary in boundaries:
        axis.axhline(boundary - 0.5, color="black", linewidth=0.8)
        axis.axvline(boundary - 0.5, color="black", linewidth=0.8)
    starts = [0] + boundaries
    ends = boundaries + [len(senses)]
    axis.set_xticks([(s + e - 1) / 2 for s, e in zip(starts, ends)])
    axis.set_xticklabels([senses[s] for s in starts], rotation=30, fontsize=7)
    axis.set_yticks([(s + e - 1) / 2 for s, e in zip(starts, ends)])
    axis.set_yticklabels([senses[s] for s in starts], fontsize=7)
    axis.set_title(title, fontsize=8)
    axis.figure.colorbar(image, ax=axis, fraction=0.046)


def _scatter(axis, matrix: np.ndarray, senses: list[str], title: str, pca_class) -> None:
    centred = matrix - matrix.mean(axis=0)
    if np.abs(centred).max() <= 1e-5 * (np.abs(matrix).max() + 1e-12):
        points = np.zeros((len(matrix), 2))  # a static embedding: every occurrence is the same point
    else:
        points = pca_class(n_components=2).fit_transform(centred)
    for sense in dict.fromkeys(senses):
        mask = np.array([s == sense for s in senses])
        axis.scatter(points[mask, 0], points[mask, 1], label=sense, s=18, alpha=0.75)
    axis.legend(fontsize=7)
    axis.set_title(title, fontsize=8)
