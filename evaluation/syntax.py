"""A syntax probe: which layer tells a word's grammatical function? (ELMo found the lower LSTM layer best for syntax.)

Reads dependency treebanks in CoNLL-like TSV -- KLUE-DP's layout (`## id<TAB>sentence` comment lines, then
one line per word: INDEX, WORD_FORM, LEMMA, POS, HEAD, DEPREL; a blank line between sentences) -- and
trains, per layer and for the even layer mix, a logistic-regression classifier from each word's vector
to its dependency label (NP_SBJ, NP_OBJ, VP, ...). Sentences are split into train and test, so no
sentence is in both. Accuracy on test, beside the majority label's.

Words are the treebank's word forms (Korean eojeol), joined by spaces, so the embedder's whitespace words
are exactly the treebank's words.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from contextemb.embedder import Embedder
from contextemb.errors import ConfigError, DataFormatError

COLUMNS = ("INDEX", "WORD_FORM", "LEMMA", "POS", "HEAD", "DEPREL")


class ParsedSentence(NamedTuple):
    words: list[str]
    labels: list[str]  # dependency label per word

    @property
    def text(self) -> str:
        return " ".join(self.words)


class SyntaxResult(NamedTuple):
    representation: str  # "layer 0", ..., "mix", "majority label"
    train_accuracy: float
    test_accuracy: float


def read_dependency_tsv(path: Path, label_column: int = 5) -> list[ParsedSentence]:
    """Sentences of a KLUE-DP-style file; DataFormatError (with the line number) for a malformed line."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path} not found")
    sentences: list[ParsedSentence] = []
    words: list[str] = []
    labels: list[str] = []

    def close() -> None:
        if words:
            sentences.append(ParsedSentence(list(words), list(labels)))
        words.clear()
        labels.clear()

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    for number, line in enumerate(lines, start=1):
        if line.startswith("##"):
            continue
        if not line.strip():
            close()
            continue
        fields = line.split("\t")
        if len(fields) <= label_column or not fields[0].strip().isdigit():
            raise DataFormatError(f"{path}:{number}: expected {len(COLUMNS)} tab-separated columns "
                                  f"({', '.join(COLUMNS)}), got {line[:80]!r}")
        word = fields[1].strip()
        if not word or any(c.isspace() for c in word):
            raise DataFormatError(f"{path}:{number}: word form {fields[1]!r} is empty or holds spaces")
        words.append(word)
        labels.append(fields[label_column].strip())
    close()
    if not sentences:
        raise DataFormatError(f"{path} holds no sentences")
    return sentences


def word_features(embedder: Embedder, sentences: Sequence[ParsedSentence]) -> np.ndarray:
    """(layers, words, dim): every word of every sentence, in order."""
    embedded = embedder.embed([s.text for s in sentences])
    for sentence, result in zip(sentences, embedded):
        if result.words != sentence.words:
            raise DataFormatError(f"word split mismatch in {sentence.text[:60]!r}")
    return np.concatenate([result.vectors for result in embedded], axis=1)


def evaluate_syntax(embedder: Embedder, sentences: Sequence[ParsedSentence], *, test_fraction: float = 0.25,
                    seed: int = 0, max_iter: int = 300) -> list[SyntaxResult]:
    """Per layer and for the mix: train on a random (1 - test_fraction) of the sentences, accuracy on the rest."""
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(len(sentences))
    cut = int(round(len(sentences) * (1 - test_fraction)))
    if cut == 0 or cut == len(sentences):
        raise DataFormatError(f"{len(sentences)} sentences are too few to split into train and test")
    train = [sentences[i] for i in order[:cut]]
    test = [sentences[i] for i in order[cut:]]
    train_x, test_x = word_features(embedder, train), word_features(embedder, test)
    train_y = np.array([label for s in train for label in s.labels])
    test_y = np.array([label for s in test for label in s.labels])
    named = {f"layer {k}": (train_x[k], test_x[k]) for k in range(train_x.shape[0])}
    named["mix"] = (train_x.mean(axis=0), test_x.mean(axis=0))
    results = []
    for name, (x_train, x_test) in named.items():
        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, C=0.1))
        classifier.fit(x_train, train_y)
        results.append(SyntaxResult(name, float(classifier.score(x_train, train_y)),
                                    float(classifier.score(x_test, test_y))))
    majority = Counter(train_y.tolist()).most_common(1)[0][0]
    results.append(SyntaxResult("majority label", float(np.mean(train_y == majority)),
                                float(np.mean(test_y == majority))))
    return results
