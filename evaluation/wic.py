"""Word-in-Context: is the target word used in the same sense in two texts? (Pilehvar & Camacho-Collados, 2019)

Reads the original WiC format (`X.data.txt`: word, PoS, index1-index2, tokenised example 1, example 2;
`X.gold.txt`: T/F per line) and a TSV pair format with header `word, text1, start1, end1, text2, start2,
end2, label` (character offsets, label T/F). Features: the cosine of the two target vectors in each layer.
Classifiers: per layer, the threshold that is most accurate on train; and logistic regression over all
layers' cosines. Accuracy on test.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

from contextemb.embedder import Embedder
from contextemb.errors import DataFormatError

from .cosine import paired_cosines
from .probe import group_by_word
from .probe_sets import parse_offsets, read_tsv

PAIR_COLUMNS = ("word", "text1", "start1", "end1", "text2", "start2", "end2", "label")


class Pair(NamedTuple):
    word: str
    text1: str
    start1: int
    end1: int
    text2: str
    start2: int
    end2: int
    same: bool


def _token_span(tokens: list[str], index: int) -> tuple[int, int]:
    """Character span of tokens[index] in " ".join(tokens)."""
    start = sum(len(token) + 1 for token in tokens[:index])
    return start, start + len(tokens[index])


def _label(value: str, where: str) -> bool:
    value = value.strip().upper()
    if value not in ("T", "F"):
        raise DataFormatError(f"{where}: label {value!r} is not T or F")
    return value == "T"


def read_wic(data_path: Path) -> list[Pair]:
    """Original WiC files: `data_path` is X.data.txt; its labels are read from X.gold.txt beside it."""
    data_path = Path(data_path)
    gold_path = data_path.with_name(data_path.name.replace(".data.txt", ".gold.txt"))
    if not data_path.is_file() or not gold_path.is_file() or gold_path == data_path:
        raise DataFormatError(f"WiC format needs {data_path} and {gold_path}")
    data = data_path.read_text(encoding="utf-8").splitlines()
    gold = gold_path.read_text(encoding="utf-8").splitlines()
    if len(data) != len(gold):
        raise DataFormatError(f"{data_path} has {len(data)} lines but {gold_path} has {len(gold)}")
    pairs = []
    for number, (line, label) in enumerate(zip(data, gold), start=1):
        fields = line.split("\t")
        if len(fields) != 5:
            raise DataFormatError(f"{data_path}, line {number}: {len(fields)} fields, WiC has 5")
        word, _, indices, example1, example2 = fields
        try:
            index1, index2 = (int(i) for i in indices.split("-"))
        except ValueError:
            raise DataFormatError(f"{data_path}, line {number}: bad token indices {indices!r}") from None
        tokens1, tokens2 = example1.split(" "), example2.split(" ")
        if not (0 <= index1 < len(tokens1) and 0 <= index2 < len(tokens2)):
            raise DataFormatError(f"{data_path}, line {number}: token index out of range")
        start1, end1 = _token_span(tokens1, index1)
        start2, end2 = _token_span(tokens2, index2)
        pairs.append(Pair(word, " ".join(tokens1), start1, end1, " ".join(tokens2), start2, end2,
                          _label(label, f"{gold_path}, line {number}")))
    return pairs


def read_pair_tsv(path: Path) -> list[Pair]:
    pairs, seen = [], {}
    for line, row in read_tsv(path, PAIR_COLUMNS):
        start1, end1 = parse_offsets(path, line, row["text1"], row["word"], row["start1"], row["end1"])
        start2, end2 = parse_offsets(path, line, row["text2"], row["word"], row["start2"], row["end2"])
        key = (row["word"], row["text1"], start1, row["text2"], start2)
        if key in seen:
            raise DataFormatError(f"{path}, line {line}: duplicate of line {seen[key]}")
        seen[key] = line
        pairs.append(Pair(row["word"], row["text1"], start1, end1, row["text2"], start2, end2,
                          _label(row["label"], f"{path}, line {line}")))
    return pairs


def read_pairs(path: Path) -> list[Pair]:
    """Either format, by name: *.data.txt is WiC, anything else the TSV pair format."""
    pairs = read_wic(path) if str(path).endswith(".data.txt") else read_pair_tsv(path)
    if not pairs:
        raise DataFormatError(f"{path} holds no pairs")
    return pairs


def layer_cosines(embedder: Embedder, pairs: Sequence[Pair], batch_size: int = 64) -> np.ndarray:
    """(pairs, layers) cosine of the two target vectors in each layer."""
    items = [(p.text1, p.start1, p.end1) for p in pairs] + [(p.text2, p.start2, p.end2) for p in pairs]
    vectors = np.stack(embedder.embed_spans(items, batch_size=batch_size))  # (2 * pairs, layers, dim)
    return paired_cosines(vectors[: len(pairs)], vectors[len(pairs):])


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The threshold t maximising accuracy of (score >= t) == label; returns (t, train accuracy)."""
    candidates = np.unique(scores)
    midpoints = np.concatenate([[candidates[0] - 1e-6], (candidates[1:] + candidates[:-1]) / 2, [candidates[-1] + 1e-6]])
    accuracies = [np.mean((scores >= t) == labels) for t in midpoints]
    best = int(np.argmax(accuracies))
    return float(midpoints[best]), float(accuracies[best])


class WicResult(NamedTuple):
    representation: str
    threshold: float | None
    train_accuracy: float
    test_accuracy: float


def evaluate_wic(embedder: Embedder, train: Sequence[Pair], test: Sequence[Pair]) -> list[WicResult]:
    train_cos, test_cos = layer_cosines(embedder, train), layer_cosines(embedder, test)
    train_labels = np.array([p.same for p in train])
    test_labels = np.array([p.same for p in test])
    results = []
    for layer in range(train_cos.shape[1]):
        threshold, train_accuracy = best_threshold(train_cos[:, layer], train_labels)
        results.append(WicResult(f"layer {layer}", threshold, train_accuracy,
                                 float(np.mean((test_cos[:, layer] >= threshold) == test_labels))))
    mix_train, mix_test = train_cos.mean(axis=1), test_cos.mean(axis=1)
    threshold, train_accuracy = best_threshold(mix_train, train_labels)
    results.append(WicResult("mix", threshold, train_accuracy, float(np.mean((mix_test >= threshold) == test_labels))))
    if len(set(train_labels)) > 1:
        classifier = LogisticRegression(max_iter=1000).fit(train_cos, train_labels)
        results.append(WicResult("logistic (all layers)", None, float(classifier.score(train_cos, train_labels)),
                                 float(classifier.score(test_cos, test_labels))))
    majority = float(max(np.mean(test_labels), 1 - np.mean(test_labels)))
    results.append(WicResult("majority class", None, float("nan"), majority))
    return results


def pairs_from_probes(probes, seed: int = 0, test_fraction: float = 0.5) -> tuple[list[Pair], list[Pair]]:
    """WiC-style pairs from a probe set, split by sentence so no sentence is in both train and test.

    For each word, the sentences are split in two; within each half every same-sense pair (T) and an equal
    number of random different-sense pairs (F) are drawn, so each split is balanced.
    """
    import itertools

    rng = np.random.default_rng(seed)
    splits: tuple[list[Pair], list[Pair]] = ([], [])
    for word, members in sorted(group_by_word(probes).items()):
        occurrences = [probes[i] for i in members]
        order = rng.permutation(len(occurrences))
        cut = int(round(len(order) * (1 - test_fraction)))
        for split, indices in zip(splits, (order[:cut], order[cut:])):
            chosen = [occurrences[i] for i in indices]
            same, different = [], []
            for a, b in itertools.combinations(chosen, 2):
                (same if a.sense == b.sense else different).append((a, b))
            count = min(len(same), len(different))
            for index in rng.permutation(len(same))[:count]:
                split.append(_pair(word, *same[index], True))
            for index in rng.permutation(len(different))[:count]:
                split.append(_pair(word, *different[index], False))
    return splits


def _pair(word: str, a, b, same: bool) -> Pair:
    return Pair(word, a.text, a.start, a.end, b.text, b.start, b.end, same)


def write_pair_tsv(pairs: Sequence[Pair], path: Path) -> None:
    from contextemb.io import atomic_write_text

    lines = ["\t".join(PAIR_COLUMNS)]
    for p in pairs:
        lines.append("\t".join([p.word, p.text1, str(p.start1), str(p.end1), p.text2, str(p.start2), str(p.end2),
                                "T" if p.same else "F"]))
    atomic_write_text(Path(path), "\n".join(lines) + "\n")
