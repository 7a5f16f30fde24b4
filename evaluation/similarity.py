"""Cosine similarity, layer by layer, between the vectors one word gets in two texts."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from contextemb.embedder import Embedder


class LayerSimilarity(NamedTuple):
    layer: int
    cosine: float


def find_word(text: str, word: str) -> tuple[int, int]:
    """Character span of the first occurrence of `word` in `text`; ValueError if it does not occur."""
    start = text.find(word)
    if not word or start < 0:
        raise ValueError(f"{word!r} does not occur in {text!r}")
    return start, start + len(word)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def word_similarity(embedder: Embedder, word: str, first_text: str, second_text: str) -> list[LayerSimilarity]:
    """Per layer (0 = token encoders, 1.. = LSTM layers), the cosine of `word`'s vectors in the two texts."""
    first, second = embedder.embed_spans([(first_text, *find_word(first_text, word)),
                                          (second_text, *find_word(second_text, word))])
    return [LayerSimilarity(layer, cosine(first[layer], second[layer])) for layer in range(embedder.num_layers)]
