"""The commands without tests of their own until now: classify, export, similarity and wic-pairs, each run through
the CLI on the session's tiny model and checked against the library or the files it wrote."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

import contextemb
from contextemb.evaluation.probe_sets import bundled_probe_file, read_probes
from contextemb.evaluation.similarity import word_similarity
from contextemb.evaluation.wic import read_pairs
from contextemb.io import load_tensors, weights_path

from conftest import DEMO

HANGUL = re.compile("[\uac00-\ud7a3]")


def write_language_set(source: Path, out: Path, rows: int) -> list[str]:
    """A labelled TSV from the first `rows` lines of a demo file: "ko" if the line holds Hangul, else "en"."""
    lines = source.read_text(encoding="utf-8").splitlines()[:rows]
    labels = ["ko" if HANGUL.search(line) else "en" for line in lines]
    out.write_text("document\tlabel\n" + "".join(f"{line}\t{label}\n" for line, label in zip(lines, labels)),
                   encoding="utf-8")
    return labels


@pytest.fixture(scope="module")
def language_sets(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """120 training rows from the demo corpus, 40 test rows from its held-out file (24 ko, 16 en)."""
    folder = tmp_path_factory.mktemp("classify")
    write_language_set(DEMO / "corpus.txt", folder / "train.tsv", 120)
    test_labels = write_language_set(DEMO / "heldout.txt", folder / "test.tsv", 40)
    return folder / "train.tsv", folder / "test.tsv", test_labels


def test_classify_learns_a_tiny_labelled_set(run_cli, tiny_model_dir, language_sets):
    """Korean or English, from the frozen biLM's layers. The majority class is 24/40 = 0.6 of the test rows;
    features that carried nothing (zeros, noise) would leave the classifier there. Measured on two tiny models:
    test and dev accuracy 1.0 with seeds 0-4, after one epoch or two; the bar of 0.95 allows two mistakes in 40."""
    train, test, test_labels = language_sets
    majority = max(Counter(test_labels).values()) / len(test_labels)
    assert majority == 0.6
    result = run_cli("classify", tiny_model_dir, "--train", train, "--test", test, "--epochs", "2", "--seed", "0",
                     "--json")
    assert result.exit_code == 0, result.stderr
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["test_accuracy"] >= 0.95, record
    assert record["dev_accuracy"] >= 0.9, record  # 12 held-back training rows
    weights = record["layer_weights"]
    assert len(weights) == 3 and abs(sum(weights) - 1) < 1e-5 and min(weights) > 0
    assert record["gamma"] > 0


def test_classify_text_report_and_row_limits(run_cli, tiny_model_dir, language_sets):
    train, test, _ = language_sets
    result = run_cli("classify", tiny_model_dir, "--train", train, "--test", test, "--epochs", "1",
                     "--max-train", "60", "--max-test", "20")
    assert result.exit_code == 0, result.stderr
    assert re.search(r"test accuracy [01]\.\d{4}", result.stdout)
    assert re.search(r"layer weights \[0\.\d{3}, 0\.\d{3}, 0\.\d{3}\]", result.stdout)
    assert "(60 train rows, 20 test rows" in result.stdout


def test_classify_refuses_labels_it_cannot_learn(run_cli, tiny_model_dir, language_sets, tmp_path):
    train, test, _ = language_sets
    one_label = tmp_path / "one.tsv"
    one_label.write_text("document\tlabel\n좋다\tpos\n최고\tpos\n", encoding="utf-8")
    result = run_cli("classify", tiny_model_dir, "--train", one_label, "--test", test)
    assert result.exit_code == 2 and "two different labels" in result.stderr
    unseen = tmp_path / "unseen.tsv"
    unseen.write_text("document\tlabel\nBonjour\tfr\nHello\ten\n", encoding="utf-8")
    result = run_cli("classify", tiny_model_dir, "--train", train, "--test", unseen, "--epochs", "1")
    assert result.exit_code == 2 and "never occur in train" in result.stderr
    result = run_cli("classify", tiny_model_dir, "--train", train, "--test", test, "--label-column", "sentiment")
    assert result.exit_code == 2 and "sentiment" in result.stderr


# ----------------------------------------------------------------------------------------------- export

EXPORT_TEXTS = ["삼성, 사상 첫 통합우승 4연패", "The bank raised its rates.", "이 영화 최고 🙂🎬 진짜 강추"]


def _vectors(model_dir: Path) -> list[np.ndarray]:
    embedder = contextemb.load(model_dir, threads=1, precision="float32")
    return [result.vectors for result in embedder.embed(EXPORT_TEXTS)]


def test_export_halves_the_weights_and_keeps_the_vectors(run_cli, tiny_model_dir, tmp_path):
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"name": "tiny", "corpus": "demo", "note": "한국어"}, ensure_ascii=False),
                    encoding="utf-8")
    out = tmp_path / "exported"
    result = run_cli("export", tiny_model_dir, out, "--card", card)
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["backward.safetensors", "config.json", "forward.safetensors",
                                                     "metrics.jsonl", "model_card.json", "tokenizer.model"]
    for name in ("config.json", "tokenizer.model", "metrics.jsonl"):
        assert (out / name).read_bytes() == (tiny_model_dir / name).read_bytes(), name
    assert json.loads((out / "model_card.json").read_text(encoding="utf-8"))["note"] == "한국어"
    for direction in ("forward", "backward"):
        original, _ = load_tensors(weights_path(tiny_model_dir, direction))
        exported, _ = load_tensors(weights_path(out, direction))
        assert exported.keys() == original.keys()
        for name, tensor in original.items():
            if tensor.is_floating_point():  # float16, and exactly the float32 weight rounded to it
                assert exported[name].dtype == torch.float16 and torch.equal(exported[name], tensor.half()), name
            else:  # the char table keeps its integer ids
                assert torch.equal(exported[name], tensor), name
    # measured: float16 weights move the vectors by 1e-3 at most, cosine 0.9999998 at least (float32 compute)
    for before, after in zip(_vectors(tiny_model_dir), _vectors(out)):
        assert before.shape == after.shape
        cosines = (before * after).sum(-1) / (np.linalg.norm(before, axis=-1) * np.linalg.norm(after, axis=-1))
        assert cosines.min() > 0.9999 and not np.array_equal(before, after)


def test_export_float32_is_lossless(run_cli, tiny_model_dir, tmp_path):
    out = tmp_path / "full"
    assert run_cli("export", tiny_model_dir, out, "--float32").exit_code == 0
    assert not (out / "model_card.json").exists() and not (out / "checkpoints").exists()
    for direction in ("forward", "backward"):
        assert (weights_path(out, direction).stat().st_size
                == weights_path(tiny_model_dir, direction).stat().st_size)
    for before, after in zip(_vectors(tiny_model_dir), _vectors(out)):
        assert np.array_equal(before, after)


def test_export_refuses_a_bad_card_and_a_missing_model(run_cli, tiny_model_dir, tmp_path):
    card = tmp_path / "card.json"
    card.write_text("{not json", encoding="utf-8")
    result = run_cli("export", tiny_model_dir, tmp_path / "out", "--card", card)
    assert result.exit_code == 2 and error_lines(result.stderr)[0].startswith("Error: --card")
    result = run_cli("export", tmp_path / "nothing", tmp_path / "out2")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert not (tmp_path / "out2").exists()


# ------------------------------------------------------------------------------------------- similarity

def _printed_cosines(stdout: str) -> list[str]:
    return re.findall(r"cosine ([+-]\d\.\d{3})", stdout)


def error_lines(stderr: str) -> list[str]:
    """stderr without the library's log records (e.g. the precision `load` chose)."""
    return [line for line in stderr.splitlines() if line.strip() and " INFO " not in line]


def test_similarity_prints_the_per_layer_cosines(run_cli, tiny_model_dir):
    first, second = "The bank raised its rates.", "We sat on the bank of the river."
    result = run_cli("similarity", tiny_model_dir, "bank", first, second)
    assert result.exit_code == 0, result.stderr
    rows = word_similarity(contextemb.load(tiny_model_dir), "bank", first, second)  # the command's defaults
    assert [row.layer for row in rows] == [0, 1, 2]
    assert _printed_cosines(result.stdout) == [f"{row.cosine:+.3f}" for row in rows]


def test_similarity_is_the_cosine_of_the_two_span_vectors(tiny_model_dir):
    first, second = "The bank raised its rates.", "We sat on the bank of the river."
    embedder = contextemb.load(tiny_model_dir, threads=1, precision="float32")
    a = embedder.embed_span(first, 4, 8)
    b = embedder.embed_span(second, 14, 18)
    expected = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    cosines = [row.cosine for row in word_similarity(embedder, "bank", first, second)]
    np.testing.assert_allclose(cosines, expected, atol=1e-5)
    # "bank" is one piece in both texts and the char-CNN sees no context, so layer 0 gives the same vector; the
    # LSTM layers read the two contexts, so the top one differs (measured 0.92 and 0.99 on two tiny models;
    # a top layer blind to context would give 1 to within 1e-6)
    assert cosines[0] == pytest.approx(1.0, abs=1e-6) and cosines[2] < 0.999


def test_similarity_refuses_a_word_that_is_not_there(run_cli, tiny_model_dir):
    result = run_cli("similarity", tiny_model_dir, "연패", "삼성 4연패", "오늘은 맑음")
    assert result.exit_code == 2
    assert error_lines(result.stderr) == ["Error: '연패' does not occur in '오늘은 맑음'"]


# -------------------------------------------------------------------------------------------- wic-pairs

def test_wic_pairs_are_balanced_split_by_sentence_and_labelled_by_sense(run_cli, tmp_path):
    train_file, test_file = tmp_path / "train.tsv", tmp_path / "test.tsv"
    result = run_cli("wic-pairs", "--language", "ko", "--train", train_file, "--test", test_file, "--seed", "3")
    assert result.exit_code == 0, result.stderr
    train, test = read_pairs(train_file), read_pairs(test_file)  # DataFormatError if offsets miss the word
    assert f"{len(train)} train pairs" in result.stdout and f"{len(test)} test pairs" in result.stdout
    sense = {(p.text, p.start): p.sense for p in read_probes(bundled_probe_file("ko"))}
    for pairs in (train, test):
        assert len(pairs) > 50
        assert sum(p.same for p in pairs) * 2 == len(pairs)  # balanced, T and F
        for pair in pairs:
            assert pair.text1[pair.start1:pair.end1] == pair.word == pair.text2[pair.start2:pair.end2]
            assert pair.same == (sense[pair.text1, pair.start1] == sense[pair.text2, pair.start2])
            assert (pair.text1, pair.start1) != (pair.text2, pair.start2)
    sentences = [{(p.text1, p.start1) for p in pairs} | {(p.text2, p.start2) for p in pairs}
                 for pairs in (train, test)]
    assert not sentences[0] & sentences[1]  # no occurrence is in both splits
    words = {p.word for p in train}
    assert words == {p.word for p in test} and len(words) >= 12

    again = tmp_path / "again"
    run_cli("wic-pairs", "--train", again / "train.tsv", "--test", again / "test.tsv", "--seed", "3")
    assert (again / "train.tsv").read_bytes() == train_file.read_bytes()  # the seed fixes the pairs
    other = tmp_path / "other"
    run_cli("wic-pairs", "--train", other / "train.tsv", "--test", other / "test.tsv", "--seed", "4")
    assert (other / "train.tsv").read_bytes() != train_file.read_bytes()


def test_wic_pairs_from_a_small_probe_file_worked_by_hand(run_cli, tmp_path):
    """Two senses, three sentences each, split 3/3. A split with two sentences of one sense and one of the other
    has one same-sense pair and two different-sense pairs, so it writes one T and one F; a split of one sense
    only has no different-sense pair and writes none, and then the other split is of one sense too."""
    probes = tmp_path / "probes.tsv"
    probes.write_text("word\tsense\tgloss\ttext\tstart\tend\n"
                      "배\tbelly\t腹\t배가 아프다\t0\t1\n배\tbelly\t腹\t배를 문질렀다\t0\t1\n"
                      "배\tbelly\t腹\t배가 고프다\t0\t1\n배\tboat\t船\t배를 탔다\t0\t1\n"
                      "배\tboat\t船\t배가 항구에 들어왔다\t0\t1\n배\tboat\t船\t배 한 척이 떠났다\t0\t1\n",
                      encoding="utf-8")
    written = Counter()
    for seed in range(6):
        train, test = tmp_path / f"train{seed}.tsv", tmp_path / f"test{seed}.tsv"
        result = run_cli("wic-pairs", "--probes", probes, "--train", train, "--test", test, "--seed", seed)
        assert result.exit_code == 0, result.stderr
        labels = []
        for path in (train, test):
            rows = path.read_text(encoding="utf-8").splitlines()
            assert rows[0] == "word\ttext1\tstart1\tend1\ttext2\tstart2\tend2\tlabel"
            labels.append(sorted(row.split("\t")[-1] for row in rows[1:]))
        assert labels in ([[], []], [["F", "T"], ["F", "T"]]), labels
        written[len(labels[0])] += 1
    assert written[2] > 0
