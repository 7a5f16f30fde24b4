"""Task fine-tuning (classify --finetune-bilm): the biLM's LSTMs learn with the classifier, on a real tiny model."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from contextemb.embedder import load
from contextemb.errors import ConfigError
from contextemb.evaluation.classify import (Batch, SequenceClassifier, WordFeatures, classify, read_labelled,
                                            train_and_test)
from contextemb.evaluation.task_finetune import (FineTunedClassifier, TextPieces, lstm_parameters, text_pieces,
                                                 trainable_copy, warmup_schedule, word_layers)

TEXTS = ["삼성, 사상 첫 통합우승 4연패", "", "The bank was closed on Monday .", "한화 연패 탈출"]


@pytest.fixture(scope="module")
def labelled(demo_corpus, tmp_path_factory):
    """Train and test TSVs (400 / 100 rows): the label says which of two cue words ends the sentence."""
    lines = [line for line in demo_corpus.read_text(encoding="utf-8").splitlines() if line.strip()][:500]
    rows = [f"{line.replace(chr(9), ' ')} {'좋다' if index % 2 else '싫다'}\t{index % 2}"
            for index, line in enumerate(lines)]
    random.Random(5).shuffle(rows)
    folder = tmp_path_factory.mktemp("labelled-ft")
    for name, part in (("train.tsv", rows[:400]), ("test.tsv", rows[400:])):
        (folder / name).write_text("document\tlabel\n" + "\n".join(part) + "\n", encoding="utf-8")
    return folder / "train.tsv", folder / "test.tsv"


def _state(module):
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def test_word_layers_are_the_embedders_frozen_word_vectors(tiny_model_dir):
    """In eval mode, the fine-tuning path's word vectors equal embed()'s; a text without pieces gets zeros."""
    embedder = load(tiny_model_dir, precision="float32")
    pieces = text_pieces(embedder, TEXTS)
    features = WordFeatures(pieces=pieces)
    batch = features.batch(list(range(len(TEXTS))))
    bilm = trainable_copy(embedder.bilm).eval()
    with torch.no_grad():
        vectors = word_layers(bilm, batch.pieces, embedder.num_layers, embedder.dim)
    assert vectors.shape == (embedder.num_layers, len(TEXTS), batch.mask.shape[1], embedder.dim)
    expected = embedder.embed(TEXTS)
    for row, result in enumerate(expected):
        words = len(result.words)
        assert pieces.num_words(row) == words
        np.testing.assert_allclose(vectors[:, row, :words].numpy(), result.vectors, atol=1e-5)
        assert not vectors[:, row, words:].any()
    assert pieces.num_words(1) == 0 and not vectors[:, 1].any()


def test_a_step_moves_the_lstms_only_and_never_the_embedders_biLM(tiny_model_dir):
    embedder = load(tiny_model_dir, precision="float32")
    original = _state(embedder.bilm)
    bilm = trainable_copy(embedder.bilm)
    encoder = bilm.forward_lm.encoder
    assert encoder.cache is not None and not encoder.trainable
    before = _state(bilm)
    features = WordFeatures(pieces=text_pieces(embedder, TEXTS))
    head = SequenceClassifier(embedder.num_layers, embedder.dim, 0, 2)
    model = FineTunedClassifier(bilm, head).train()
    assert encoder.cache is not None  # a frozen char-CNN keeps its cache in training too
    optimizer = torch.optim.Adam([{"params": head.parameters()}, {"params": lstm_parameters(bilm), "lr": 1e-2}])
    loss = torch.nn.functional.cross_entropy(model(features.batch([0, 1, 2, 3])), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    optimizer.step()
    after = _state(bilm)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(".lstms." in name for name in changed), changed
    assert any(name.startswith("forward_lm.") for name in changed)
    assert any(name.startswith("backward_lm.") for name in changed)
    assert all(torch.equal(original[name], tensor) for name, tensor in _state(embedder.bilm).items())


def test_the_biLM_learning_rate_warms_up_and_the_classifiers_does_not():
    weights = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.Adam([{"params": [weights[0]], "lr": 1e-3}, {"params": [weights[1]], "lr": 1e-4}])
    schedule = warmup_schedule(optimizer, bilm_group=1, steps=4)
    seen = []
    for _ in range(6):
        seen.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        schedule.step()
    assert [head for head, _ in seen] == [1e-3] * 6
    assert [round(bilm / 1e-4, 6) for _, bilm in seen] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_classify_fine_tunes_each_kind_that_reads_the_biLM(tiny_model_dir, labelled):
    embedder = load(tiny_model_dir, precision="float32")
    original = _state(embedder.bilm)
    train_texts, train_labels = read_labelled(labelled[0])
    test_texts, test_labels = read_labelled(labelled[1])
    report = classify(embedder, ("mix",), train_texts, train_labels, test_texts, test_labels, epochs=6,
                      finetune_bilm=True, bilm_lr=1e-3, batch_size=32, progress=False)
    (result,) = report.results
    assert result.bilm_lr == 1e-3 and len(result.layer_weights) == embedder.num_layers
    assert result.test_accuracy >= 0.9, result  # the cue word decides the label
    assert all(torch.equal(original[name], tensor) for name, tensor in _state(embedder.bilm).items())


def test_classify_refuses_to_fine_tune_inference_weights(tiny_model_dir):
    embedder = load(tiny_model_dir, precision="bf16")
    with pytest.raises(ConfigError, match="float32"):
        classify(embedder, ("mix",), ["좋다"] * 4, ["1", "0"] * 2, ["좋다"] * 2, ["1", "0"], finetune_bilm=True)


def test_frozen_and_fine_tuned_features_are_not_mixed_up():
    with pytest.raises(ValueError, match="not both"):
        WordFeatures(contextual=[np.zeros((3, 1, 4), np.float16)],
                     pieces=TextPieces([[5]], [np.ones((1, 1), np.float32)], 3, 4))


def test_cli_reports_the_fine_tuned_biLM(run_cli, tiny_model_dir, labelled):
    result = run_cli("classify", tiny_model_dir, "--train", labelled[0], "--test", labelled[1], "--features", "mix",
                     "--finetune-bilm", "--bilm-lr", "3e-4", "--epochs", "1", "--max-train", "60", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["bilm_lr"] == 3e-4 and report["epochs_run"] == 1


@pytest.mark.parametrize("arguments, fragment", [
    (["--features", "mix", "--finetune-bilm", "--precision", "bf16"], "--finetune-bilm trains the biLM in float32"),
    (["--features", "mix", "--finetune-bilm", "--bilm-lr", "0"], "--bilm-lr must be > 0"),
    (["--features", "static", "--finetune-bilm"], "--finetune-bilm needs a kind that reads the biLM"),
    (["--features", "mix", "--frozen-epochs", "1"], "--frozen-epochs are the first epochs of --finetune-bilm"),
    (["--features", "mix", "--bilm-lr", "1e-3"], "--bilm-lr is the learning rate of --finetune-bilm"),
    (["--features", "mix", "--finetune-bilm", "--frozen-epochs", "2", "--epochs", "2"],
     "--frozen-epochs 2 leaves the biLM no epoch to learn in (--epochs 2)"),
], ids=["bf16", "zero-lr", "static-only", "frozen-without-fine-tuning", "lr-without-fine-tuning",
                              "all-epochs-frozen"])
def test_cli_refuses_bad_fine_tuning(run_cli, tiny_model_dir, labelled, arguments, fragment):
    result = run_cli("classify", tiny_model_dir, "--train", labelled[0], "--test", labelled[1], *arguments)
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip() and " INFO " not in line]
    assert len(lines) == 1 and fragment in lines[0], result.stderr


def test_batch_of_pieces_pads_pooling_to_the_classifiers_words(tiny_model_dir):
    embedder = load(tiny_model_dir, precision="float32")
    features = WordFeatures(pieces=text_pieces(embedder, TEXTS))
    batch: Batch = features.batch([1, 3])
    assert batch.pieces.pooling.shape[:2] == (2, batch.mask.shape[1])
    assert batch.pieces.piece_ids[0] == [] and batch.mask[0].tolist() == [True] + [False] * (batch.mask.shape[1] - 1)


def test_a_frozen_biLM_runs_as_in_inference_and_does_not_learn(tiny_model_dir):
    """Gradual unfreezing: while frozen, the classifier learns over the frozen recipe's vectors (no dropout in
    the biLM, no gradients into it); unfrozen, the LSTMs learn again."""
    embedder = load(tiny_model_dir, precision="float32")
    bilm = trainable_copy(embedder.bilm)
    bilm.forward_lm.dropout.p = bilm.backward_lm.dropout.p = 0.5  # dropout would show in training mode
    head = SequenceClassifier(embedder.num_layers, embedder.dim, 0, 2, dropout=0.0)
    model = FineTunedClassifier(bilm, head)
    features = WordFeatures(pieces=text_pieces(embedder, TEXTS))
    batch = features.batch([0, 2, 3])
    labels = torch.tensor([0, 1, 0])
    optimizer = torch.optim.Adam([{"params": head.parameters()}, {"params": lstm_parameters(bilm), "lr": 1e-2}])
    for frozen in (True, False):
        model.freeze_bilm(frozen)
        model.train()
        assert model.head.training and model.bilm.training is not frozen
        before = _state(bilm)
        logits = model(batch)
        if frozen:
            model.eval()
            torch.testing.assert_close(logits, model(batch))  # the same as evaluation: no biLM dropout
            model.train()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(logits, labels).backward()
        optimizer.step()
        moved = any(not torch.equal(before[name], tensor) for name, tensor in _state(bilm).items())
        assert moved is not frozen


def test_classify_reports_its_frozen_epochs(tiny_model_dir, labelled):
    embedder = load(tiny_model_dir, precision="float32")
    train_texts, train_labels = read_labelled(labelled[0], limit=120)
    test_texts, test_labels = read_labelled(labelled[1], limit=40)
    report = classify(embedder, ("mix",), train_texts, train_labels, test_texts, test_labels, epochs=2, patience=5,
                      finetune_bilm=True, frozen_epochs=1, progress=False)
    assert report.results[0].frozen_epochs == 1 and report.results[0].epochs_run == 2
    with pytest.raises(ConfigError, match="frozen_epochs"):
        classify(embedder, ("mix",), train_texts, train_labels, test_texts, test_labels, finetune_bilm=True,
                 frozen_epochs=-1)
    with pytest.raises(ConfigError, match="need finetune_bilm"):
        classify(embedder, ("mix",), train_texts, train_labels, test_texts, test_labels, frozen_epochs=1)
    with pytest.raises(ConfigError, match="no epoch to learn"):
        classify(embedder, ("mix",), train_texts, train_labels, test_texts, test_labels, epochs=2,
                 finetune_bilm=True, frozen_epochs=2)


def test_patience_counts_from_the_first_epoch_the_biLM_learns(tiny_model_dir, labelled):
    """At rates too small to change a prediction the dev accuracy never improves after epoch 1: patience 1
    would stop at epoch 3, in which the biLM has had a single epoch; counted from the unfreezing it runs all 4."""
    embedder = load(tiny_model_dir, precision="float32")
    train_texts, train_labels = read_labelled(labelled[0], limit=60)
    test_texts, test_labels = read_labelled(labelled[1], limit=20)
    train, test = (WordFeatures.of_kind("mix", pieces=text_pieces(embedder, texts))
                   for texts in (train_texts, test_texts))
    result = train_and_test("mix", train, train_labels, test, test_labels, epochs=4, patience=1, lr=1e-12,
                            bilm=embedder.bilm, bilm_lr=1e-12, frozen_epochs=2, progress=False)
    assert result.best_epoch == 1 and result.epochs_run == 4 and result.frozen_epochs == 2
    unfrozen = train_and_test("mix", train, train_labels, test, test_labels, epochs=4, patience=1, lr=1e-12,
                              bilm=embedder.bilm, bilm_lr=1e-12, progress=False)
    assert unfrozen.epochs_run == 3  # the same dev accuracies without frozen epochs stop as before
