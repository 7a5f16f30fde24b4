"""The classifier's three kinds of word features (mix, static, static+mix), end to end on a tiny labelled set."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from contextemb.embedder import load
from contextemb.errors import ConfigError
from contextemb.evaluation.classify import FEATURE_KINDS, classify, parse_feature_kinds, static_features
from contextemb.evaluation.word2vec import StaticVectors, train_word2vec

W2V_DIM = 16


@pytest.fixture(scope="module")
def w2v_path(tiny_model_dir, small_corpus, tmp_path_factory):
    from contextemb.model_dir import load_model_dir

    out = tmp_path_factory.mktemp("w2v") / "w2v.bin"
    tokenizer = load_model_dir(tiny_model_dir, ()).tokenizer
    train_word2vec(small_corpus, tokenizer, out, dim=W2V_DIM, epochs=5, min_count=1, workers=1)
    return out


@pytest.fixture(scope="module")
def labelled(demo_corpus, tmp_path_factory):
    """Train and test TSVs (640 / 160 rows): the label says which of two cue words ends the sentence."""
    lines = [line for line in demo_corpus.read_text(encoding="utf-8").splitlines() if line.strip()][:800]
    rows = [f"{line.replace(chr(9), ' ')} {'좋다' if index % 2 else '싫다'}\t{index % 2}"
            for index, line in enumerate(lines)]
    random.Random(3).shuffle(rows)
    folder = tmp_path_factory.mktemp("labelled")
    for name, part in (("train.tsv", rows[:640]), ("test.tsv", rows[640:])):
        (folder / name).write_text("document\tlabel\n" + "\n".join(part) + "\n", encoding="utf-8")
    return folder / "train.tsv", folder / "test.tsv"


def test_parse_feature_kinds():
    assert parse_feature_kinds(["static+mix", "mix,static", "mix"]) == ("static+mix", "mix", "static")
    with pytest.raises(ConfigError, match="choose from mix, static, static\\+mix"):
        parse_feature_kinds(["mix+static"])


def _word2vec_of_pieces(tokenizer, pieces, out):
    """A real word2vec file holding only `pieces` (random vectors), with the sidecar naming `tokenizer`."""
    from gensim.models import KeyedVectors

    from contextemb.evaluation.word2vec import tokenizer_digest

    vectors = KeyedVectors(W2V_DIM)
    vectors.add_vectors(list(pieces), np.random.default_rng(0).normal(size=(len(pieces), W2V_DIM)))
    vectors.save_word2vec_format(str(out), binary=True)
    out.with_name(out.name + ".json").write_text(json.dumps({"tokenizer_sha256": tokenizer_digest(tokenizer)}))
    return out


def test_static_features_are_static_vectors_and_zero_for_unknown_words(tiny_model_dir, tmp_path):
    embedder = load(tiny_model_dir)
    tokenizer = embedder.tokenizer
    pieces_of = lambda word: {tokenizer.pieces[i] for i in tokenizer.encode([word])[0]}  # noqa: E731
    path = _word2vec_of_pieces(tokenizer, sorted(pieces_of("영화") - pieces_of("龘")), tmp_path / "w2v.bin")
    static = StaticVectors(path, tokenizer)
    with pytest.raises(KeyError):
        static.vector("龘")  # none of its pieces is in the file
    rows = static_features(static, ["영화 龘 영화", ""])
    assert rows[0].shape == (3, W2V_DIM) and rows[1].shape == (0, W2V_DIM)
    expected = static.vector("영화").astype(np.float16)
    np.testing.assert_array_equal(rows[0][0], expected)
    np.testing.assert_array_equal(rows[0][2], expected)
    assert not rows[0][1].any()


def test_every_feature_kind_trains_and_reports_its_weights(tiny_model_dir, w2v_path, labelled):
    from contextemb.evaluation.classify import read_labelled

    embedder = load(tiny_model_dir)
    static = StaticVectors(w2v_path, embedder.tokenizer)
    train_texts, train_labels = read_labelled(labelled[0])
    test_texts, test_labels = read_labelled(labelled[1])
    report = classify(embedder, FEATURE_KINDS, train_texts, train_labels, test_texts, test_labels, static=static,
                      epochs=8, progress=False)
    results = {result.name: result for result in report.results}
    assert list(results) == ["mix", "static", "static+mix"]
    assert results["mix"].input_dim == embedder.dim
    assert results["static"].input_dim == W2V_DIM
    assert results["static+mix"].input_dim == W2V_DIM + embedder.dim
    for name in ("mix", "static+mix"):
        weights = results[name].layer_weights
        assert len(weights) == embedder.num_layers and abs(sum(weights) - 1) < 1e-5
        assert results[name].gamma is not None
    assert results["static"].layer_weights == [] and results["static"].gamma is None
    assert results["mix"].static_gamma is None and results["static+mix"].static_gamma is not None
    for result in results.values():
        # the cue word decides the label: every kind of feature carries it
        assert result.test_accuracy >= 0.9, result
        assert 1 <= result.best_epoch <= result.epochs_run <= 8


def test_cli_static_plus_mix_as_json(run_cli, tiny_model_dir, w2v_path, labelled):
    result = run_cli("classify", tiny_model_dir, "--train", labelled[0], "--test", labelled[1], "--w2v", w2v_path,
                     "--features", "static+mix", "--epochs", "1", "--max-train", "60", "--json")
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    report = json.loads(line)
    assert report["name"] == "static+mix" and report["input_dim"] == W2V_DIM + load(tiny_model_dir).dim
    assert report["epochs_run"] == 1 and 0.0 <= report["test_accuracy"] <= 1.0


@pytest.mark.parametrize("arguments, fragment", [
    (["--features", "elmo"], "unknown feature kind 'elmo'"),
    (["--features", "static"], "need Word2Vec vectors (--w2v)"),
], ids=["unknown-kind", "static-without-w2v"])
def test_cli_refuses_bad_features(run_cli, tiny_model_dir, labelled, arguments, fragment):
    result = run_cli("classify", tiny_model_dir, "--train", labelled[0], "--test", labelled[1], *arguments)
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip() and " INFO " not in line]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and fragment in lines[0], result.stderr


@pytest.mark.parametrize("patience", [1, 3])
def test_cli_patience_ends_training_that_many_epochs_after_the_best(run_cli, tiny_model_dir, w2v_path, labelled,
                                                                     patience):
    # the cue word puts dev accuracy at its ceiling within a few epochs; no later epoch can beat it, so training
    # stops exactly patience + 1 epochs after the best one, well before the 30 allowed
    result = run_cli("classify", tiny_model_dir, "--train", labelled[0], "--test", labelled[1], "--w2v", w2v_path,
                     "--features", "static", "--epochs", "30", "--patience", str(patience), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["epochs_run"] == report["best_epoch"] + patience + 1 < 30, report


def test_cli_refuses_a_patience_below_one(run_cli, tiny_model_dir, labelled):
    result = run_cli("classify", tiny_model_dir, "--train", labelled[0], "--test", labelled[1], "--patience", "0")
    assert result.exit_code != 0 and "must be > 0" in result.output


def test_layer_norm_makes_the_mix_blind_to_a_layer_scale():
    """With layer_norm each layer is normalised before mixing, so scaling one layer leaves the classifier's word
    inputs unchanged; without it, the same scaling changes them."""
    from contextemb.evaluation.classify import Batch, SequenceClassifier

    torch.manual_seed(0)
    layers = torch.randn(3, 2, 4, 8)  # (layers, batch, words, dim)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    scaled = layers.clone()
    scaled[2] *= 7.0
    for layer_norm, unchanged in ((True, True), (False, False)):
        model = SequenceClassifier(3, 8, 0, 2, layer_norm=layer_norm)
        first = model.word_inputs(Batch(layers, None, mask))
        second = model.word_inputs(Batch(scaled, None, mask))
        assert torch.allclose(first, second, atol=1e-5) is unchanged


def test_a_texts_logits_do_not_depend_on_the_other_texts_in_its_batch():
    """The classifier's BiLSTM reads each text to its own last word: padding a text out to a longer neighbour's
    length must not move its logits (an unpacked backward LSTM started in the padding, so `predict` over other
    batches than `classify`'s changed about 1 NSMC label in 5,000)."""
    from contextemb.evaluation.classify import Batch, SequenceClassifier

    torch.manual_seed(0)
    for static_dim, contextual_dim in ((8, 0), (0, 8), (8, 8)):
        model = SequenceClassifier(3, contextual_dim, static_dim, 2, output_mix=bool(contextual_dim)).eval()
        short_layers, short_static = torch.randn(3, 1, 2, 8), torch.randn(1, 2, 8)
        alone = Batch(short_layers if contextual_dim else None, short_static if static_dim else None,
                      torch.ones(1, 2, dtype=torch.bool))
        layers = torch.zeros(3, 2, 6, 8)
        layers[:, 0, :2] = short_layers[:, 0]
        layers[:, 1] = torch.randn(3, 6, 8)
        static = torch.zeros(2, 6, 8)
        static[0, :2] = short_static[0]
        static[1] = torch.randn(6, 8)
        mask = torch.tensor([[True, True] + [False] * 4, [True] * 6])
        padded = Batch(layers if contextual_dim else None, static if static_dim else None, mask)
        with torch.no_grad():
            torch.testing.assert_close(model(padded)[0], model(alone)[0], atol=1e-6, rtol=1e-5)


def test_cli_layer_norm_is_reported(run_cli, tiny_model_dir, labelled):
    result = run_cli("classify", tiny_model_dir, "--train", labelled[0], "--test", labelled[1], "--features", "mix",
                     "--layer-norm", "--epochs", "1", "--max-train", "60", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["layer_norm"] is True and len(report["layer_weights"]) == 3


def test_the_output_mix_carries_the_biLM_layers_past_the_classifier_lstm():
    """ELMo at the output: with output_mix, the logits still depend on the biLM's layers when the BiLSTM's
    input mix is switched off (gamma 0); without it they cannot. The output mix learns its own weights."""
    from contextemb.evaluation.classify import Batch, SequenceClassifier

    torch.manual_seed(0)
    layers = torch.randn(3, 2, 4, 8)  # (layers, batch, words, dim)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    for output_mix in (True, False):
        model = SequenceClassifier(3, 8, 0, 2, output_mix=output_mix).eval()
        with torch.no_grad():
            model.mix.gamma.zero_()
        logits = model(Batch(layers, None, mask))
        changed = model(Batch(layers * 3.0 + 1.0, None, mask))
        assert torch.allclose(logits, changed) is not output_mix
    model = SequenceClassifier(3, 8, 0, 2, output_mix=True)
    loss = torch.nn.functional.cross_entropy(model(Batch(layers, None, mask)), torch.tensor([0, 1]))
    loss.backward()
    assert model.output_mix.scalar_parameters.grad.abs().sum() > 0 and model.output_mix.gamma.grad.abs() > 0
    with pytest.raises(ConfigError, match="output mix"):
        SequenceClassifier(3, 0, 16, 2, output_mix=True)


def test_cli_output_mix_is_reported_for_the_kinds_that_read_the_biLM(run_cli, tiny_model_dir, labelled, w2v_path):
    result = run_cli("classify", tiny_model_dir, "--train", labelled[0], "--test", labelled[1], "--w2v", w2v_path,
                     "--features", "static,static+mix", "--output-mix", "--epochs", "1", "--max-train", "60",
                     "--json")
    assert result.exit_code == 0, result.output
    static, both = (json.loads(line) for line in result.stdout.splitlines())
    assert static["output_layer_weights"] == [] and static["output_gamma"] is None
    assert len(both["output_layer_weights"]) == 3 and both["output_gamma"] is not None
    assert abs(sum(both["output_layer_weights"]) - 1.0) < 1e-5


def test_cli_refuses_an_output_mix_without_the_biLM(run_cli, tiny_model_dir, labelled, w2v_path):
    result = run_cli("classify", tiny_model_dir, "--train", labelled[0], "--test", labelled[1], "--w2v", w2v_path,
                     "--features", "static", "--output-mix")
    assert result.exit_code != 0 and "--output-mix needs" in result.output


def test_library_refuses_an_output_mix_without_the_biLM(tiny_model_dir, w2v_path):
    embedder = load(tiny_model_dir, precision="float32")
    static = StaticVectors(w2v_path, embedder.tokenizer)
    with pytest.raises(ConfigError, match="output mix"):
        classify(embedder, ("static",), ["좋다"] * 4, ["1", "0"] * 2, ["좋다"] * 2, ["1", "0"], static=static,
                 output_mix=True)
