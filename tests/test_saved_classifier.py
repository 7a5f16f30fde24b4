"""classify --save and contextemb predict: a trained classifier kept as a directory labels new texts as it did in
training, on a real tiny model, real Word2Vec vectors and real training."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from contextemb.embedder import load
from contextemb.errors import ConfigError, ModelFormatError
from contextemb.evaluation.classify import classify, read_labelled
from contextemb.evaluation.saved_classifier import CLASSIFIER_FILE, TextClassifier, predict_file
from contextemb.evaluation.word2vec import StaticVectors, train_word2vec
from contextemb.io import atomic_directory
from contextemb.model_dir import load_model_dir


@pytest.fixture(scope="module")
def labelled(demo_corpus, tmp_path_factory):
    """Train and test TSVs (300 / 100 rows): the label (neg / pos) says which cue word ends the sentence."""
    lines = [line for line in demo_corpus.read_text(encoding="utf-8").splitlines() if line.strip()][:400]
    rows = [f"{line.replace(chr(9), ' ')} {'좋다' if index % 2 else '싫다'}\t{'pos' if index % 2 else 'neg'}"
            for index, line in enumerate(lines)]
    random.Random(7).shuffle(rows)
    folder = tmp_path_factory.mktemp("labelled-saved")
    for name, part in (("train.tsv", rows[:300]), ("test.tsv", rows[300:])):
        (folder / name).write_text("document\tlabel\n" + "\n".join(part) + "\n", encoding="utf-8")
    return folder / "train.tsv", folder / "test.tsv"


@pytest.fixture(scope="module")
def w2v_path(tiny_model_dir, small_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("w2v-saved") / "w2v.bin"
    train_word2vec(small_corpus, load_model_dir(tiny_model_dir, ()).tokenizer, out, dim=16, epochs=5, min_count=1,
                   workers=1)
    return out


def _accuracy(classifier: TextClassifier, texts, labels) -> float:
    return float(np.mean([predicted == label for predicted, label in zip(classifier.predict(texts), labels)]))


def test_saved_classifiers_label_the_test_set_as_in_training(tiny_model_dir, labelled, w2v_path, tmp_path):
    """Each kind, reloaded from its directory, gets exactly the test accuracy classify measured."""
    embedder = load(tiny_model_dir, precision="float32")
    static = StaticVectors(w2v_path, embedder.tokenizer)
    train, test = read_labelled(labelled[0]), read_labelled(labelled[1])
    report = classify(embedder, ("mix", "static", "static+mix"), *train, *test, static=static, epochs=2,
                      progress=False, save_dir=tmp_path / "saved")
    for result in report.results:
        directory = tmp_path / "saved" / result.name
        classifier = TextClassifier(directory, precision="float32")
        assert classifier.kind == result.name and classifier.classes == ["neg", "pos"]
        assert _accuracy(classifier, *test) == pytest.approx(result.test_accuracy, abs=1e-12)
        probabilities = classifier.probabilities(test[0][:5])
        assert probabilities.shape == (5, 2)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
        assert classifier.predict(text for text in test[0][:3]) == classifier.predict(test[0][:3])
        assert classifier.predict([]) == [] and classifier.probabilities([]).shape == (0, 2)
        with pytest.raises(TypeError):
            classifier.predict("one text, not a list")
        assert (directory / "bilm" / "forward.safetensors").is_file() == ("mix" in result.name)
        assert (directory / "w2v.bin").is_file() == ("static" in result.name)
    assert not [path for path in (tmp_path / "saved").iterdir() if path.name.startswith(".")]  # no partial dirs


def test_a_fine_tuned_biLM_is_saved_as_a_model_that_load_reads(tiny_model_dir, labelled, tmp_path):
    embedder = load(tiny_model_dir, precision="float32")
    before = {name: tensor.clone() for name, tensor in embedder.bilm.state_dict().items()}
    train, test = read_labelled(labelled[0]), read_labelled(labelled[1])
    report = classify(embedder, ("mix",), *train, *test, epochs=2, finetune_bilm=True, bilm_lr=3e-4,
                      progress=False, save_dir=tmp_path / "ft")
    result = report.results[0]
    classifier = TextClassifier(tmp_path / "ft" / "mix", precision="float32")
    # the fine-tuned biLM's word vectors equal the training path's to ~1e-5: at most a tie could flip a label
    assert abs(_accuracy(classifier, *test) - result.test_accuracy) <= 1 / len(test[0])
    tuned = load(tmp_path / "ft" / "mix" / "bilm", precision="float32")
    text = ["삼성, 사상 첫 통합우승 4연패"]
    moved = np.abs(tuned.embed(text)[0].vectors[1:] - embedder.embed(text)[0].vectors[1:]).max()
    assert moved > 1e-4  # the LSTM layers learned ...
    np.testing.assert_array_equal(tuned.embed(text)[0].vectors[0], embedder.embed(text)[0].vectors[0])  # not layer 0
    for name, tensor in embedder.bilm.state_dict().items():  # ... in a copy: the loaded model never changes
        assert torch.equal(tensor, before[name]), name
    card = json.loads((tmp_path / "ft" / "mix" / "bilm" / "model_card.json").read_text(encoding="utf-8"))
    assert card["fine_tuned_from"] == str(tiny_model_dir)


def test_an_existing_save_directory_is_refused_before_training(tiny_model_dir, labelled, tmp_path):
    (tmp_path / "mix").mkdir()
    (tmp_path / "mix" / "keep.txt").write_text("mine", encoding="utf-8")
    embedder = load(tiny_model_dir, precision="float32")
    with pytest.raises(ConfigError, match="not an empty directory"):
        classify(embedder, ("mix",), *read_labelled(labelled[0]), *read_labelled(labelled[1]), save_dir=tmp_path)
    assert (tmp_path / "mix" / "keep.txt").read_text(encoding="utf-8") == "mine"


def test_a_failed_save_leaves_no_directory(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "out") as tmp:
            (tmp / "half.txt").write_text("half", encoding="utf-8")
            raise RuntimeError("crash while writing")
    assert list(tmp_path.iterdir()) == []


def test_cli_saves_and_predicts_every_line(run_cli, tiny_model_dir, labelled, tmp_path):
    saved = tmp_path / "saved"
    result = run_cli("classify", tiny_model_dir, "--train", labelled[0], "--test", labelled[1], "--features", "mix",
                     "--epochs", "2", "--save", saved, "--no-progress")
    assert result.exit_code == 0, result.output
    assert f"contextemb predict {saved / 'mix'}" in result.stdout
    training = json.loads((saved / "mix" / CLASSIFIER_FILE).read_text(encoding="utf-8"))["training"]
    assert training["seed"] == 0 and training["epochs"] == 2 and training["train_texts"] > 0
    texts = tmp_path / "texts.txt"
    texts.write_text("영화가 정말 좋다\n\nThe bank was closed on Monday . 싫다\n", encoding="utf-8")
    out = tmp_path / "labels.tsv"
    result = run_cli("predict", saved / "mix", texts, "--out", out, "--precision", "float32")
    assert result.exit_code == 0, result.output
    lines = out.read_text(encoding="utf-8").splitlines()
    piped = run_cli("predict", saved / "mix", "-", "--precision", "float32", stdin=texts.read_bytes())
    assert piped.exit_code == 0, piped.output
    assert piped.stdout.splitlines() == lines  # standard input in, standard output out: the same TSV
    assert lines[0] == "label\tp_neg\tp_pos"
    assert len(lines) == 4  # the header, then one line per input line, the blank one included
    expected = TextClassifier(saved / "mix", precision="float32").probabilities(
        ["영화가 정말 좋다", "", "The bank was closed on Monday . 싫다"])
    for line, row in zip(lines[1:], expected):
        label, *probabilities = line.split("\t")
        assert label == ["neg", "pos"][int(row.argmax())]
        np.testing.assert_allclose([float(p) for p in probabilities], row, atol=6e-5)
    result = run_cli("classify", tiny_model_dir, "--train", labelled[0], "--test", labelled[1], "--features", "mix",
                     "--save", saved)  # mix is there now
    assert result.exit_code == 2 and "not an empty directory" in result.stderr


@pytest.mark.parametrize("damage, fragment", [
    (lambda d: (d / CLASSIFIER_FILE).unlink(), "classify --save"),
    (lambda d: (d / CLASSIFIER_FILE).write_text("{not json", encoding="utf-8"), "not valid JSON"),
    (lambda d: (d / CLASSIFIER_FILE).write_text('{"format": "other"}', encoding="utf-8"), "not a contextemb classifier"),
    (lambda d: (d / "classifier.safetensors").write_bytes(b"\0" * 64), "classifier.safetensors"),
])
def test_a_damaged_classifier_directory_is_refused_in_one_line(run_cli, tiny_model_dir, labelled, w2v_path, tmp_path,
                                                                damage, fragment):
    embedder = load(tiny_model_dir, precision="float32")
    classify(embedder, ("static",), *read_labelled(labelled[0], limit=60), *read_labelled(labelled[1], limit=20),
             static=StaticVectors(w2v_path, embedder.tokenizer), epochs=1, progress=False, save_dir=tmp_path)
    TextClassifier(tmp_path / "static")  # whole, it loads
    damage(tmp_path / "static")
    with pytest.raises(ModelFormatError):
        TextClassifier(tmp_path / "static")
    texts = tmp_path / "texts.txt"
    texts.write_text("좋다\n", encoding="utf-8")
    result = run_cli("predict", tmp_path / "static", texts)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip() and " INFO " not in line]
    assert len(lines) == 1 and fragment in lines[0], result.stderr


def test_predict_refuses_a_missing_input_file(run_cli, tmp_path):
    result = run_cli("predict", tmp_path, tmp_path / "absent.txt")
    assert result.exit_code == 2 and "does not exist" in result.stderr
