"""The development homograph set: its reference file, resolving references against real files, the sentence
window worked by hand, and pair accuracy from known vectors."""

from __future__ import annotations

import gzip
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from contextemb.errors import DataFormatError
from contextemb.evaluation.dev_homographs import (MAX_WINDOW_CHARS, dev_reference_file, line_hash, load_dev_probes,
                                                  read_references, sentence_window)
from contextemb.evaluation.dev_set import pair_accuracy
from contextemb.evaluation.probe import WordVectors
from contextemb.evaluation.probe_sets import Probe, bundled_probe_file, read_probes

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HEADER = "word\tsense\tgloss\tsource\tline\tstart\tend\tline_sha1\n"


def test_reference_file_has_eight_words_of_thirty_labelled_occurrences():
    references = read_references(dev_reference_file())
    senses: dict[str, Counter] = defaultdict(Counter)
    for reference in references:
        senses[reference.word][reference.sense] += 1
        assert reference.source.startswith("ko-open/") or reference.source == "nsmc/corpus.txt"
    assert len(senses) >= 8
    for word, counts in senses.items():
        assert sum(counts.values()) >= 30 and len(counts) >= 2, (word, counts)
        assert min(counts.values()) >= 8, (word, counts)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not beside this checkout")
def test_references_resolve_against_the_shared_corpora(monkeypatch):
    monkeypatch.delenv("CONTEXTEMB_DATA", raising=False)
    probes = load_dev_probes()  # checks every line hash and text[start:end] == word
    assert len(probes) == len(read_references(dev_reference_file()))
    assert all(p.text[p.start:p.end] == p.word and len(p.text) <= MAX_WINDOW_CHARS for p in probes)
    bundled = {p.text for p in read_probes(bundled_probe_file("ko"))}
    assert not any(sentence in probe.text for sentence in bundled for probe in probes)


def write_source(root: Path, name: str, lines: list[str]) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)


def reference(word, source, line, start, text, sense="s", sha=None) -> str:
    sha = sha or line_hash(text.encode("utf-8"))
    return f"{word}\t{sense}\tgloss\t{source}\t{line}\t{start}\t{start + len(word)}\t{sha}\n"


@pytest.fixture()
def data_root(tmp_path) -> Path:
    root = tmp_path / "data"
    write_source(root, "ko-open/news.txt.gz", ["첫 줄.", "우리 팀이 3연패를 당했다. 감독은 사퇴했다."])
    write_source(root, "nsmc/corpus.txt", ["배가 고파서 영화에 집중이 안 됨"])
    return root


def test_references_resolve_to_sentence_windows(tmp_path, data_root):
    text = "우리 팀이 3연패를 당했다. 감독은 사퇴했다."
    refs = tmp_path / "refs.tsv"
    refs.write_text(HEADER + reference("연패", "ko-open/news.txt.gz", 1, 7, text, "losses")
                    + reference("배", "nsmc/corpus.txt", 0, 0, "배가 고파서 영화에 집중이 안 됨", "belly"), encoding="utf-8")
    probes = load_dev_probes(data_root, refs)
    assert probes == [Probe("연패", "losses", "gloss", "우리 팀이 3연패를 당했다.", 7, 9),
                      Probe("배", "belly", "gloss", "배가 고파서 영화에 집중이 안 됨", 0, 1)]
    assert load_dev_probes(data_root, refs, word="배") == probes[1:]


@pytest.mark.parametrize("row, message", [
    (reference("연패", "ko-open/news.txt.gz", 1, 6, "우리 팀이 3연패를 당했다. 감독은 사퇴했다."), "not the word"),
    (reference("연패", "ko-open/news.txt.gz", 1, 6, "x", sha="0" * 12), "source file changed"),
    (reference("배", "nsmc/corpus.txt", 0, 1, "배가 고파서 영화에 집중이 안 됨"), "not the word"),
    (reference("배", "nsmc/corpus.txt", 5, 0, "배가"), "no such line"),
    (reference("배", "nsmc/missing.txt", 0, 0, "배가"), "does not exist"),
    (reference("배", "../secret.txt", 0, 0, "배가"), "inside the data root"),
    ("배\ts\tg\tnsmc/corpus.txt\t0\t0\t2\tabc\n", "cannot hold the word"),
    ("배\ts\tg\tnsmc/corpus.txt\tzero\t0\t1\tabc\n", "must be integers"),
])
def test_a_malformed_reference_raises(tmp_path, data_root, row, message):
    refs = tmp_path / "refs.tsv"
    refs.write_text(HEADER + row, encoding="utf-8")
    with pytest.raises(DataFormatError, match=message):
        load_dev_probes(data_root, refs)


def test_missing_data_root_and_duplicates_raise(tmp_path, data_root):
    refs = tmp_path / "refs.tsv"
    row = reference("배", "nsmc/corpus.txt", 0, 0, "배가 고파서 영화에 집중이 안 됨")
    refs.write_text(HEADER + row, encoding="utf-8")
    with pytest.raises(DataFormatError, match="CONTEXTEMB_DATA"):
        load_dev_probes(tmp_path / "nowhere", refs)
    refs.write_text(HEADER + row + row, encoding="utf-8")
    with pytest.raises(DataFormatError, match="duplicate"):
        load_dev_probes(data_root, refs)


def test_sentence_window_worked_by_hand():
    text = "첫 문장. 둘째 문장에 배가 있다! 셋째 문장."
    start = text.index("배")
    assert sentence_window(text, start, start + 1) == (6, 19)  # "둘째 문장에 배가 있다!"
    # max 9 characters: [9, 18) = "문장에 배가 있다", 4 either side of the word; 18 is inside "있다!", so cut at 15
    low, high = sentence_window(text, start, start + 1, max_chars=9)
    assert text[low:high] == "문장에 배가"


def test_pair_accuracy_from_known_vectors():
    """Layer 0 cannot tell senses apart (one vector for all); layer 1 puts each sense on its own axis."""
    probes = [Probe("w", sense, "", f"text {i}", 0, 4) for i, sense in enumerate("aaaaaabbbbbb")]
    layer0 = np.ones((12, 2))
    layer1 = np.array([[1.0, 0.01 * i] if p.sense == "a" else [0.01 * i, 1.0] for i, p in enumerate(probes)])
    grouped = {"w": WordVectors(probes, np.stack([layer0, layer1]), None)}
    report = pair_accuracy(grouped)
    accuracy = {result.representation: result.test_accuracy for result in report.results}
    assert report.test_pairs > 0 and report.train_pairs > 0
    assert accuracy["layer 0"] == pytest.approx(0.5)  # every pair has cosine 1: one side of any threshold
    assert accuracy["layer 1"] == pytest.approx(1.0)


def test_cli_dev_set_errors(run_cli, tmp_path, monkeypatch):
    result = run_cli("probe", "ko-nsmc-small", "--dev-set", "--probes", tmp_path / "p.tsv")
    assert result.exit_code == 2 and "give one" in result.output
    monkeypatch.setenv("CONTEXTEMB_DATA", str(tmp_path / "nowhere"))
    result = run_cli("probe", "ko-nsmc-small", "--dev-set")
    assert result.exit_code == 2 and result.output.startswith("Error: data root")
