"""evaluation.cosine and probe.group_by_word, worked out by hand."""

from __future__ import annotations

import numpy as np

from contextemb.evaluation.cosine import cosine_matrix, paired_cosines
from contextemb.evaluation.probe import group_by_word
from contextemb.evaluation.probe_sets import Probe


def test_cosine_matrix_worked_example():
    # [1, 0] . [1, 1] / (1 * sqrt 2) = 0.7071; a zero vector has cosine 0 with everything, itself included
    similarity = cosine_matrix(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]))
    np.testing.assert_allclose(similarity, [[1, 0.70710678, 0], [0.70710678, 1, 0], [0, 0, 0]], atol=1e-8)


def test_paired_cosines_match_rows_and_keep_leading_axes():
    first = np.array([[[1.0, 0.0], [3.0, 4.0]]])  # (1, 2, dim)
    second = np.array([[[0.0, 2.0], [-6.0, -8.0]]])
    np.testing.assert_allclose(paired_cosines(first, second), [[0.0, -1.0]], atol=1e-12)
    assert paired_cosines(np.zeros(2), np.ones(2)) == 0.0
    vectors = np.random.default_rng(0).normal(size=(5, 7))
    np.testing.assert_allclose(paired_cosines(vectors, vectors[::-1]), np.diag(cosine_matrix(vectors)[:, ::-1]),
                               atol=1e-12)


def test_group_by_word_gives_indices_in_order_of_first_occurrence():
    probes = [Probe(word, "sense", "gloss", word, 0, 1) for word in ("배", "말", "배", "눈", "말")]
    assert group_by_word(probes) == {"배": [0, 2], "말": [1, 4], "눈": [3]}
