"""Embedder, ScalarMix, ContextualEmbedder and `contextemb embed` on the session's tiny trained model."""

from __future__ import annotations

import itertools
import json

import h5py
import numpy as np
import pytest
import torch

import contextemb
from contextemb import ContextualEmbedder, ScalarMix
from contextemb.embedder import length_batches
from contextemb.export import export_embeddings

TEXTS = [
    "삼성, 사상 첫 통합우승 4연패",
    "한화, 악몽같은 연패 언제 탈출하나",
    "The bank raised its rates.",
    "이 영화 최고 🙂🎬 진짜   강추",  # emoji and repeated spaces
    "",
    "   ",
    "Mixed 한국어 and English 文字",
]


@pytest.fixture(scope="module")
def embedder(tiny_model_dir):
    # float32: these tests hold vectors exactly equal across batchings. bf16 and int8 (what precision="auto"
    # picks on many CPUs) round a text's products differently with the batch around it (up to ~1e-2).
    return contextemb.load(tiny_model_dir, precision="float32")


def test_words_spans_and_shapes(embedder):
    results = embedder.embed(TEXTS)
    assert len(results) == len(TEXTS)
    for text, result in zip(TEXTS, results):
        assert result.text == text
        assert result.words == text.split()
        assert [text[s:e] for s, e in result.spans] == result.words
        assert result.vectors.shape == (embedder.num_layers, len(text.split()), embedder.dim)
        assert result.vectors.dtype == np.float32
        assert np.isfinite(result.vectors).all()
    assert embedder.num_layers == 3 and embedder.dim == 2 * 48


def test_piece_unit_and_pools(embedder):
    text = TEXTS[0]
    pieces = embedder.embed([text], unit="piece")[0]
    encoding = embedder.encode(text)
    assert pieces.words == encoding.pieces
    assert pieces.vectors.shape[1] == len(encoding.piece_ids)
    words = {pool: embedder.embed([text], pool=pool)[0].vectors for pool in ("mean", "first", "last")}
    last_word_pieces = [i for i, (s, e) in enumerate(zip(encoding.char_start, encoding.char_end)) if s >= 14]
    np.testing.assert_allclose(words["first"][:, -1], pieces.vectors[:, last_word_pieces[0]], atol=1e-6)
    np.testing.assert_allclose(words["last"][:, -1], pieces.vectors[:, last_word_pieces[-1]], atol=1e-6)
    np.testing.assert_allclose(words["mean"][:, -1], pieces.vectors[:, last_word_pieces].mean(axis=1), atol=1e-6)


def test_empty_input(embedder):
    assert embedder.embed([]) == []
    with pytest.raises(TypeError):
        embedder.embed("a string, not a list")


def test_batch_size_and_batch_company_do_not_change_vectors(embedder):
    one_by_one = embedder.embed(TEXTS, batch_size=1)
    together = embedder.embed(TEXTS, batch_size=64)
    alone = [embedder.embed([text])[0] for text in TEXTS]
    piece_budget = embedder.embed(TEXTS, batch_pieces=12)  # every text its own batch, or two short ones
    for a, b, c, d in zip(one_by_one, together, alone, piece_budget):
        np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-5)
        np.testing.assert_allclose(a.vectors, c.vectors, atol=1e-5)
        np.testing.assert_allclose(a.vectors, d.vectors, atol=1e-5)
    streamed = {}
    for index, result in embedder.iter_embed(TEXTS, batch_size=2):
        assert not torch.is_inference_mode_enabled()  # the caller's loop keeps its own grad mode
        streamed[index] = result
    assert sorted(streamed) == list(range(len(TEXTS)))
    for index, want in enumerate(one_by_one):
        assert streamed[index].words == want.words
        np.testing.assert_allclose(streamed[index].vectors, want.vectors, atol=1e-5)


def test_contexts_change_the_vector_of_the_same_word(embedder):
    first = embedder.embed_span(TEXTS[0], 15, 17)  # 연패 in 4연패
    second = embedder.embed_span(TEXTS[1], 9, 11)  # 연패 in 악몽같은 연패
    assert first.shape == (embedder.num_layers, embedder.dim)
    assert not np.allclose(first[1:], second[1:])  # the LSTM layers see different contexts


def test_span_of_a_whole_word_equals_the_word_vector(embedder):
    text = TEXTS[2]
    result = embedder.embed([text])[0]
    for index, (start, end) in enumerate(result.spans):
        np.testing.assert_allclose(embedder.embed_span(text, start, end), result.vectors[:, index], atol=1e-5)


@pytest.mark.parametrize("start, end", [(-1, 2), (3, 3), (5, 2), (0, 100), (17, 18)])
def test_out_of_range_spans_raise_value_error(embedder, start, end):
    with pytest.raises(ValueError):
        embedder.embed_span(TEXTS[0], start, end)


def test_whitespace_span_raises_value_error(embedder):
    with pytest.raises(ValueError, match="whitespace"):
        embedder.embed_span("a   b", 1, 3)


def test_return_tensors_hold_the_same_vectors(embedder):
    as_tensors = embedder.embed(TEXTS[:2], return_tensors=True)
    as_arrays = embedder.embed(TEXTS[:2])
    for tensor_result, array_result in zip(as_tensors, as_arrays):
        vectors = tensor_result.vectors
        assert isinstance(vectors, torch.Tensor) and vectors.dtype == torch.float32 and vectors.device.type == "cpu"
        assert tensor_result.words == array_result.words
        assert np.array_equal(vectors.numpy(), array_result.vectors)


def test_scalar_mix_worked_example_and_gradients():
    """Two layers [[1, 2]] and [[3, 4]]: equal weights give their average, gamma = 1."""
    mix = ScalarMix(2)
    layers = [torch.tensor([[[1.0, 2.0]]]), torch.tensor([[[3.0, 4.0]]])]  # (batch 1, seq 1, dim 2)
    out = mix(layers)
    assert torch.allclose(out, torch.tensor([[[2.0, 3.0]]]))
    assert torch.isclose(mix.weights.sum(), torch.tensor(1.0))
    out.sum().backward()
    assert mix.scalar_parameters.grad is not None and mix.gamma.grad is not None
    assert torch.allclose(mix.gamma.grad, torch.tensor(5.0))
    # moving weight to layer 1 moves the output towards it
    with torch.no_grad():
        mix.scalar_parameters.copy_(torch.tensor([0.0, 10.0]))
    assert torch.allclose(mix(layers), layers[1], atol=1e-3)


def test_scalar_mix_layer_norm_ignores_masked_positions():
    mix = ScalarMix(1, layer_norm=True)
    layer = torch.tensor([[[1.0, 3.0], [100.0, -100.0]]])  # the second position is padding
    mask = torch.tensor([[True, False]])
    out = mix([layer], mask)
    assert torch.allclose(out[0, 0], torch.tensor([-1.0, 1.0]), atol=1e-5)


def test_contextual_embedder_trains_only_the_mixes(embedder):
    layer = ContextualEmbedder(embedder, num_output_representations=2, dropout=0.0)
    output = layer(TEXTS)
    assert len(output.representations) == 2
    width = max(len(t.split()) for t in TEXTS)
    assert output.representations[0].shape == (len(TEXTS), width, embedder.dim)
    assert output.mask.tolist()[4] == [False] * width
    (output.representations[0].sum() + output.representations[1].pow(2).sum()).backward()
    for mix in layer.scalar_mixes:
        assert mix.scalar_parameters.grad is not None and mix.scalar_parameters.grad.abs().sum() > 0
    assert all(p.grad is None for p in layer.bilm.parameters())
    assert all(abs(sum(w) - 1) < 1e-6 for w in layer.layer_weights())


def test_contextual_embedder_can_fine_tune_the_bilm(tiny_model_dir):
    layer = ContextualEmbedder(tiny_model_dir, requires_grad=True, dropout=0.0)
    layer(TEXTS[:2]).representations[0].sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.bilm.parameters())


def test_embed_command_writes_allennlp_layout(run_cli, tiny_model_dir, embedder, tmp_path):
    source = tmp_path / "sentences.txt"
    source.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    output = tmp_path / "vectors.h5"
    result = run_cli("embed", tiny_model_dir, source, output, "--layers", "all", "--no-progress",
                     "--precision", "float32")
    assert result.exit_code == 0, result.stderr
    expected = embedder.embed(TEXTS)
    with h5py.File(output, "r") as h5:
        assert len([k for k in h5.keys() if k != "sentence_to_index"]) == len(TEXTS)
        for index, want in enumerate(expected):
            np.testing.assert_allclose(h5[str(index)][()], want.vectors, atol=1e-5)
        mapping = json.loads(h5["sentence_to_index"][0])
        assert mapping[TEXTS[1]] == "1"
    again = run_cli("embed", tiny_model_dir, source, output, "--no-progress")
    assert again.exit_code == 2 and "--force" in again.stderr
    top = run_cli("embed", tiny_model_dir, source, tmp_path / "top.npz", "--layers", "top", "--format", "npz",
                  "--force", "--no-progress", "--precision", "float32")
    assert top.exit_code == 0
    with np.load(tmp_path / "top.npz") as archive:
        np.testing.assert_allclose(archive["0"], expected[0].vectors[-1], atol=1e-5)
        assert archive["4"].shape == (0, embedder.dim)


def test_export_writes_every_line_under_its_number_in_any_batch_order(embedder, tmp_path):
    """Batches run shortest first, so lines are written out of order; numbering and the first occurrence of a
    repeated sentence must not depend on that."""
    lines = [TEXTS[0], "짧다", "", TEXTS[2], "짧다", TEXTS[0] + " 그리고 더 길게 이어지는 문장", TEXTS[0]]
    source = tmp_path / "lines.txt"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = tmp_path / "out.h5"
    export_embeddings(embedder, source, output, batch_size=2, chunk_lines=4, progress=False)
    expected = embedder.embed(lines)
    with h5py.File(output, "r") as h5:
        for index, want in enumerate(expected):
            np.testing.assert_allclose(h5[str(index)][()], want.vectors, atol=1e-5)
        mapping = json.loads(h5["sentence_to_index"][0])
    assert mapping == {TEXTS[0]: "0", "짧다": "1", "": "2", TEXTS[2]: "3", lines[5]: "5"}
    assert list(mapping) == [TEXTS[0], "짧다", "", TEXTS[2], lines[5]]  # in line order, as AllenNLP writes it


def test_long_sentence_is_embedded_whole(embedder):
    """Far longer than the 64-piece training windows: the LSTMs read it all, nothing is truncated."""
    text = " ".join(["삼성이 통합우승 4연패를 달성했다"] * 150)
    result = embedder.embed([text])[0]
    assert result.vectors.shape[1] == len(text.split()) == 600
    assert np.isfinite(result.vectors).all()


@pytest.mark.parametrize("start, end", [(1.0, 3), ("1", 3), (True, 3)])
def test_span_offsets_must_be_integers(embedder, start, end):
    with pytest.raises(ValueError, match="integers"):
        embedder.embed_span(TEXTS[0], start, end)


from hypothesis import given, settings, strategies as st  # noqa: E402

SENTENCE = st.text(alphabet=st.sampled_from(list("가나다연패배눈 abcXY 12,.🙂  한국어")), max_size=30)


@settings(max_examples=25, deadline=None)
@given(st.lists(SENTENCE, min_size=1, max_size=6), st.integers(1, 4))
def test_property_alone_or_in_a_batch_gives_the_same_vectors(embedder, texts, batch_size):
    together = embedder.embed(texts, batch_size=batch_size)
    for text, result in zip(texts, together):
        alone = embedder.embed([text])[0]
        assert result.words == alone.words == text.split()
        np.testing.assert_allclose(result.vectors, alone.vectors, atol=1e-5)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 300), max_size=60), st.integers(1, 8), st.integers(1, 400))
def test_property_length_batches_cover_every_text_once_within_the_limits(lengths, max_texts, max_pieces):
    batches = length_batches(lengths, max_texts, max_pieces)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        assert 1 <= len(batch) <= max_texts
        padded = len(batch) * (max(lengths[i] for i in batch) + 2)
        assert padded <= max_pieces or len(batch) == 1
    longest = [max(lengths[i] for i in batch) for batch in batches]
    assert longest == sorted(longest)  # shortest texts first


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-20, 20), min_size=1, max_size=8), st.integers(0, 2**31 - 1))
def test_property_scalar_mix_is_a_convex_combination_of_its_layers(initial, seed):
    """Whatever the initial weights, the (untrained, gamma 1) mix of equal layers is that layer, every output
    lies between the layers' smallest and largest value at its position, and a larger initial weight never
    gives its layer less pull."""
    mix = ScalarMix(len(initial), initial_weights=initial)
    generator = torch.Generator().manual_seed(seed)
    layers = torch.randn(len(initial), 2, 3, 4, generator=generator)  # (layers, batch, seq, dim)
    with torch.no_grad():
        torch.testing.assert_close(mix(layers[:1].expand_as(layers)), layers[0], atol=1e-5, rtol=1e-5)
        out = mix(layers)
    assert (out >= layers.min(dim=0).values - 1e-5).all() and (out <= layers.max(dim=0).values + 1e-5).all()
    weights = mix.weights.detach()
    for i, j in itertools.permutations(range(len(initial)), 2):
        if initial[i] > initial[j]:
            assert weights[i] >= weights[j]
