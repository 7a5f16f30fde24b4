"""Cosine similarity, layer by layer, between the vectors one word gets in two texts."""

from __future__ import annotations

from typing import NamedTuple

from contextemb.embedder import Embedder
from contextemb.errors import DataFormatError

from .cosine import paired_cosines


class LayerSimilarity(NamedTuple):
    layer: int
    cosine: float


def find_word(text: str, word: str) -> tuple[int, int]:
    """Character span of the first occurrence of `word` in `text`; ValueError if it does not occur."""
    start = text.find(word)
    if not word or start < 0:
        raise DataFormatError(f"{word!r} does not occur in {text!r}")
    return start, start + len(word)


def word_similarity(embedder: Embedder, word: str, first_text: str, second_text: str) -> list[LayerSimilarity]:
    """Per layer (0 = token encoders, 1.. = LSTM layers), the cosine of `word`'s vectors in the two texts."""
    first, second = embedder.embed_spans([(first_text, *find_word(first_text, word)),
                                          (second_text, *find_word(second_text, word))])
    cosines = paired_cosines(first, second)  # (layers,)
    return [LayerSimilarity(layer, float(cosine)) for layer, cosine in enumerate(cosines)]
