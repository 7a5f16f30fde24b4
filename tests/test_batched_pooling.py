"""The batched paths of Embedder.embed (one pooling product per batch, alignment.word_pooling, the biLM's
pooled_vectors and padded_vectors) against the per-text reference (Embedder.word_vectors over BiLM.forward)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

import contextemb
from contextemb.alignment import pooling_matrix, word_groups, word_pooling
from contextemb.export import export_embeddings

TEXTS = ["삼성, 사상 첫 통합우승 4연패", "", "   ", "😀 이모지 😀👍🏽 좋아요", "a\u200bb \u200b 끝",
         "이 팀은 3연패를 당했다", "Hello, world!  두  칸", "ㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋ", "\t탭\t문자\n"]


@pytest.fixture(scope="module")
def embedder(tiny_model_dir):
    return contextemb.load(tiny_model_dir, precision="float32")


def per_text(embedder, texts, unit, pool, batch_size):
    """The per-text reference: the same biLM batches (a float32 product's rounding can depend on the rows beside
    it), then one small pooling product per text."""
    encodings = [embedder.encode(text) for text in texts]
    with torch.inference_mode():
        vectors = embedder.piece_vectors(encodings, batch_size=batch_size)
        return [embedder.word_vectors(text, encoding, v, unit, pool)
                for text, encoding, v in zip(texts, encodings, vectors)]


@pytest.mark.parametrize("pool", ["mean", "first", "last"])
def test_word_pooling_equals_pooling_matrix_of_word_groups(embedder, pool):
    for text in TEXTS:
        encoding = embedder.encode(text)
        if not encoding.piece_ids:
            continue
        spans, groups = word_groups(text, encoding.char_start, encoding.char_end)
        fast_spans, matrix = word_pooling(text, encoding.char_start, encoding.char_end, pool)
        assert fast_spans == spans
        np.testing.assert_array_equal(matrix, pooling_matrix(groups, len(encoding.piece_ids), pool))


def test_word_pooling_gives_an_uncovered_word_its_nearest_piece():
    # "b" at [4, 5) has no piece of its own (as when the normaliser drops a character): the piece starting nearest
    spans, matrix = word_pooling("aa  b", [0, 1], [1, 2], "mean")
    np.testing.assert_array_equal(matrix, [[0.5, 0.5], [0.0, 1.0]])


@pytest.mark.parametrize("unit, pool", [("word", "mean"), ("word", "first"), ("word", "last"), ("piece", "mean")])
def test_batched_embed_equals_per_text_pooling(embedder, unit, pool):
    batched = embedder.embed(TEXTS, unit=unit, pool=pool, batch_size=4)
    reference = per_text(embedder, TEXTS, unit, pool, batch_size=4)
    for fast, slow in zip(batched, reference):
        assert fast.words == slow.words and fast.spans == slow.spans
        assert fast.vectors.shape == tuple(slow.vectors.shape) and fast.vectors.flags.c_contiguous
        if pool == "mean" and unit == "word":  # a batched product sums in another order: rounding only
            np.testing.assert_allclose(fast.vectors, slow.vectors.numpy(), rtol=0, atol=1e-6)
        else:  # one weight of 1.0 per word, or a copy: exact
            np.testing.assert_array_equal(fast.vectors, slow.vectors.numpy())
    assert batched[1].vectors.shape == (embedder.num_layers, 0, embedder.dim)


def test_padded_vectors_hold_each_texts_piece_vectors(embedder):
    """Against the per-text layout: piece i = forward position i + 1 beside backward position n - i."""
    ids = [embedder.encode(text).piece_ids for text in TEXTS if embedder.encode(text).piece_ids]
    with torch.inference_mode():
        padded = embedder.bilm.padded_vectors(ids)
        forward_states, backward_states = map(torch.stack, embedder.bilm._states(ids))
        for row, text_ids in enumerate(ids):
            n = len(text_ids)
            own = torch.cat([forward_states[:, row, 1:n + 1], backward_states[:, row, 1:n + 1].flip(1)], dim=-1)
            torch.testing.assert_close(padded[:, row, :n], own, rtol=0, atol=0)
    with pytest.raises(ValueError):
        embedder.bilm.padded_vectors([[], ids[0]])


def test_export_writes_what_embed_returns(embedder, tmp_path):
    source = tmp_path / "lines.txt"
    source.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    export_embeddings(embedder, source, tmp_path / "out.hdf5", progress=False)
    with h5py.File(tmp_path / "out.hdf5") as handle:
        for index, result in enumerate(embedder.embed(source.read_text(encoding="utf-8").split("\n")[:-1])):
            assert handle[str(index)].dtype == np.float32
            np.testing.assert_array_equal(handle[str(index)][()], result.vectors)
