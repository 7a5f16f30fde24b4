"""Probe sets, sense metrics worked by hand, WiC readers, and the Word2Vec baseline."""

from __future__ import annotations

import numpy as np
import pytest

from contextemb.errors import DataFormatError, ModelFormatError
from contextemb.evaluation.probe import chance_level, nearest_neighbour_hits, cosine_matrix, sense_metrics
from contextemb.evaluation.probe_sets import bundled_probe_file, read_probes
from contextemb.evaluation.wic import best_threshold, read_pairs
from contextemb.evaluation.word2vec import StaticVectors, train_word2vec

HEADER = "word\tsense\tgloss\ttext\tstart\tend\n"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_probe_file_checks(tmp_path):
    good = HEADER + "연패\twin\t連霸\t삼성 4연패 달성\t4\t6\n연패\tloss\t連敗\t한화 10연패 수렁\t5\t7\n"
    probes = read_probes(write(tmp_path, "ok.tsv", good))
    assert [(p.text[p.start:p.end], p.sense) for p in probes] == [("연패", "win"), ("연패", "loss")]
    with pytest.raises(DataFormatError, match="missing column"):
        read_probes(write(tmp_path, "cols.tsv", "word\tsense\ttext\n연패\twin\t삼성 4연패\n"))
    with pytest.raises(DataFormatError, match="not the word"):
        read_probes(write(tmp_path, "off.tsv", HEADER + "연패\twin\tx\t삼성 4연패 달성\t3\t5\n"))
    with pytest.raises(DataFormatError, match="duplicate"):
        read_probes(write(tmp_path, "dup.tsv", HEADER + "연패\twin\tx\t삼성 4연패\t4\t6\n" * 2))
    with pytest.raises(DataFormatError, match="not integers"):
        read_probes(write(tmp_path, "int.tsv", HEADER + "연패\twin\tx\t삼성 4연패\tfour\t6\n"))


@pytest.mark.parametrize("language, words", [("ko", 12), ("en", 8)])
def test_bundled_probe_sets(language, words):
    probes = read_probes(bundled_probe_file(language))  # DataFormatError if the set is not bundled
    by_sense: dict = {}
    for probe in probes:
        by_sense.setdefault(probe.word, {}).setdefault(probe.sense, 0)
        by_sense[probe.word][probe.sense] += 1
    assert len(by_sense) >= words
    assert all(len(senses) >= 2 and min(senses.values()) >= 10 for senses in by_sense.values())


def test_sense_metrics_worked_example():
    """Two senses, two occurrences each, on orthogonal axes: perfect 1-NN, within 1, cross 0."""
    vectors = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    labels = ["a", "a", "b", "b"]
    metrics = sense_metrics(vectors, labels, samples=200)
    assert metrics.accuracy == 1.0
    assert metrics.chance == pytest.approx(1 / 3)  # each has 1 same-sense neighbour among 3
    assert metrics.within == pytest.approx(1.0) and metrics.cross == pytest.approx(0.0)
    assert metrics.gap == pytest.approx(1.0)
    assert metrics.silhouette == pytest.approx(1.0)


def test_static_vectors_score_exactly_chance():
    labels = np.array(["a", "a", "a", "b", "b"])
    vectors = np.tile([0.3, -1.0, 2.0], (5, 1))
    hits = nearest_neighbour_hits(cosine_matrix(vectors), labels)
    assert hits.mean() == pytest.approx(chance_level(labels))
    metrics = sense_metrics(vectors, labels, samples=50)
    assert metrics.gap == pytest.approx(0.0) and metrics.accuracy == pytest.approx(metrics.chance)


def test_best_threshold():
    scores = np.array([0.1, 0.2, 0.8, 0.9])
    threshold, accuracy = best_threshold(scores, np.array([False, False, True, True]))
    assert 0.2 < threshold < 0.8 and accuracy == 1.0


def test_wic_formats(tmp_path):
    data = write(tmp_path, "x.data.txt", "bank\tN\t1-4\tthe bank closed .\tI sat by the bank .\n")
    write(tmp_path, "x.gold.txt", "F\n")
    (pair,) = read_pairs(data)
    assert pair.text1[pair.start1:pair.end1] == "bank" and pair.text2[pair.start2:pair.end2] == "bank"
    assert pair.same is False
    tsv = write(tmp_path, "pairs.tsv", "word\ttext1\tstart1\tend1\ttext2\tstart2\tend2\tlabel\n"
                "배\t배가 아프다\t0\t1\t배를 탔다\t0\t1\tF\n")
    assert read_pairs(tsv)[0].same is False
    bad = write(tmp_path, "bad.tsv", "word\ttext1\tstart1\tend1\ttext2\tstart2\tend2\tlabel\n"
                "배\t배가 아프다\t0\t1\t배를 탔다\t0\t1\tmaybe\n")
    with pytest.raises(DataFormatError, match="T or F"):
        read_pairs(bad)
    write(tmp_path, "y.gold.txt", "T\nF\n")
    with pytest.raises(DataFormatError, match="lines"):
        read_pairs(write(tmp_path, "y.data.txt", "bank\tN\t1-3\tthe bank closed .\tI sat by the bank .\n"))


def test_word2vec_is_static_and_refuses_another_tokenizer(tiny_model_dir, small_corpus, tmp_path):
    from contextemb.model_dir import load_model_dir
    from contextemb.tokenization import Tokenizer, train_sentencepiece

    tokenizer = load_model_dir(tiny_model_dir, ()).tokenizer
    out = tmp_path / "w2v.bin"
    result = train_word2vec(small_corpus, tokenizer, out, dim=16, epochs=1, min_count=2, workers=1)
    assert result.pieces > 100
    static = StaticVectors(out, tokenizer)
    vector = static.vector("영화")
    assert vector.shape == (16,) and np.isfinite(vector).all()
    other = Tokenizer(train_sentencepiece(small_corpus.read_text(encoding="utf-8").splitlines(), 900))
    with pytest.raises(ModelFormatError, match="another tokenizer"):
        StaticVectors(out, other)
