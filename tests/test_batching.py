"""contextemb.batching: length batches and padding, on worked examples and as properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from contextemb.batching import length_batches, pad_ids, pad_vectors, sort_by_length


def test_length_batches_worked_example():
    # sorted: 1 (2), 3 (3), 0 (5), 2 (9); [1, 3] pads to 2 x 3 = 6 <= 12, adding row 0 would make 3 x 5 = 15
    assert length_batches([5, 2, 9, 3], max_tokens=12) == [[1, 3], [0], [2]]
    assert length_batches([5, 2, 9, 3], max_rows=3) == [[1, 3, 0], [2]]
    assert length_batches([5, 2, 9, 3]) == [[1, 3, 0, 2]]
    assert length_batches([40, 1], max_tokens=12) == [[1], [0]]  # too wide for any batch: a batch of its own
    assert length_batches([]) == []


def test_sort_by_length_keeps_the_order_of_equal_lengths():
    assert sort_by_length([3, 1, 3, 1, 2]) == [1, 3, 4, 0, 2]


@pytest.mark.parametrize("limits", [{"max_rows": 0}, {"max_tokens": 0}])
def test_length_batches_refuses_a_limit_below_one(limits):
    with pytest.raises(ValueError):
        length_batches([1, 2], **limits)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 300), max_size=60), st.none() | st.integers(1, 8), st.none() | st.integers(1, 400))
def test_property_length_batches_cover_every_row_once_within_the_limits(lengths, max_rows, max_tokens):
    batches = length_batches(lengths, max_rows, max_tokens)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        assert 1 <= len(batch) <= (max_rows or len(lengths))
        assert max_tokens is None or len(batch) * max(lengths[i] for i in batch) <= max_tokens or len(batch) == 1
    order = [i for batch in batches for i in batch]
    assert order == sort_by_length(lengths)  # shortest first, ties in input order


def test_pad_ids_worked_example():
    padded = pad_ids([[7, 8, 9], [4], []], pad_value=0)
    assert padded.dtype == torch.int64
    assert padded.tolist() == [[7, 8, 9], [4, 0, 0], [0, 0, 0]]
    assert pad_ids([[5]], pad_value=-1, width=3).tolist() == [[5, -1, -1]]
    assert pad_ids([], pad_value=0).shape == (0, 0)
    with pytest.raises(ValueError):
        pad_ids([[1, 2, 3]], pad_value=0, width=2)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.integers(1, 2**40), max_size=12), max_size=10))
def test_property_pad_ids_holds_each_row_then_padding(rows):
    padded = pad_ids(rows, pad_value=0).numpy()
    assert padded.shape == (len(rows), max(map(len, rows), default=0))
    for row, ids in zip(padded, rows):
        assert row[:len(ids)].tolist() == ids
        assert (row[len(ids):] == 0).all()


def test_pad_vectors_stacks_with_zeros_a_mask_and_gradients():
    short = torch.ones(2, 1, 3, requires_grad=True)  # (layers, words, dim)
    long = torch.full((2, 3, 3), 2.0)
    padded, mask = pad_vectors([short, long])
    assert padded.shape == (2, 2, 3, 3)  # (layers, batch, width, dim)
    assert mask.tolist() == [[True, False, False], [True, True, True]]
    np.testing.assert_array_equal(padded[:, 0, 1:].detach().numpy(), 0.0)
    np.testing.assert_array_equal(padded[:, 1].detach().numpy(), 2.0)
    padded.sum().backward()
    np.testing.assert_array_equal(short.grad.numpy(), 1.0)
    wide, wide_mask = pad_vectors([torch.zeros(2, 0, 3)], min_width=1)  # an empty text, one padded word
    assert wide.shape == (2, 1, 1, 3) and wide_mask.tolist() == [[False]]
