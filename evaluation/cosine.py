"""Cosine similarity of vectors: every pair in one set (a matrix) or matched pairs from two sets.

    cosine_matrix([[1, 0], [1, 1]])          -> [[1, .7071], [.7071, 1]]
    paired_cosines([[1, 0]], [[0, 2]])       -> [0]
"""

from __future__ import annotations

import numpy as np

NORM_FLOOR = 1e-12  # a zero vector has cosine 0 with everything, not NaN


def unit_vectors(vectors: np.ndarray) -> np.ndarray:
    """(..., dim) -> (..., dim): each vector divided by its length (a zero vector stays zero)."""
    vectors = np.asarray(vectors)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), NORM_FLOOR)


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """(n, dim) -> (n, n) cosine of every pair."""
    unit = unit_vectors(vectors)
    return np.clip(unit @ unit.T, -1.0, 1.0)


def paired_cosines(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(..., dim) twice -> (...): the cosine of first[i] and second[i] for each i."""
    return np.clip((unit_vectors(first) * unit_vectors(second)).sum(axis=-1), -1.0, 1.0)
