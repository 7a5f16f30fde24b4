"""How much of a homograph set's senses does a bag of the sentence's other words find, with no language model?

    python -m benchmarks.context_tfidf                          the development set (needs ../shared)
    python -m benchmarks.context_tfidf --bundled [--word 연패]   the bundled Korean probe set
    python -m benchmarks.context_tfidf --model ko-general       also a bag of that model's pieces

A yardstick for the biLM's 1-NN sense accuracy (the mean over words, as `contextemb probe` reports it): each
occurrence is its sentence with the word cut out, as a TF-IDF vector (scikit-learn; the IDF fitted on the set's
own sentences, no labels), and the nearest other occurrence of the same word by cosine gives the sense. The
classic bag-of-context baseline of word-sense disambiguation: it reads the same words the biLM reads, in no order.
"""

from __future__ import annotations

import argparse
from typing import Callable, Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from contextemb.evaluation.dev_homographs import load_dev_probes
from contextemb.evaluation.probe import group_by_word, sense_metrics
from contextemb.evaluation.probe_sets import Probe, bundled_probe_file, read_probes


def context_text(probe: Probe) -> str:
    """The probe's text with its word replaced by a space."""
    return f"{probe.text[:probe.start]} {probe.text[probe.end:]}"


def bag_of_context_accuracy(probes: Sequence[Probe], vectorizer: TfidfVectorizer) -> float:
    """The mean over words of 1-NN sense accuracy of the TF-IDF vectors of the probes' contexts."""
    matrix = vectorizer.fit_transform([context_text(probe) for probe in probes]).toarray()
    return float(np.mean([sense_metrics(matrix[indices], [probes[i].sense for i in indices], samples=1).accuracy
                          for indices in group_by_word(probes).values()]))


def vectorizers(model: str | None) -> dict[str, Callable[[], TfidfVectorizer]]:
    rows = {"words (between spaces)": lambda: TfidfVectorizer(token_pattern=r"\S+"),
            "characters, 2-4": lambda: TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4))}
    if model is not None:
        from contextemb.packaged import resolve_model
        from contextemb.tokenization import Tokenizer

        tokenizer = Tokenizer.from_file(resolve_model(model) / "tokenizer.model")

        def pieces(text: str) -> list[str]:
            return [tokenizer.pieces[i] for i in tokenizer.encode([text])[0]]

        rows[f"{model} pieces"] = lambda: TfidfVectorizer(analyzer=pieces)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundled", action="store_true", help="the bundled Korean probe set, not the dev set")
    parser.add_argument("--word", help="only this word's occurrences")
    parser.add_argument("--model", help="also a bag of this model's sentencepiece pieces")
    args = parser.parse_args(argv)
    probes = read_probes(bundled_probe_file("ko"), word=args.word) if args.bundled else load_dev_probes(word=args.word)
    print(f"{len(probes)} occurrences of {len(group_by_word(probes))} words; 1-NN sense accuracy, mean over words")
    for name, make in vectorizers(args.model).items():
        print(f"{name:24s} {bag_of_context_accuracy(probes, make()):.3f}", flush=True)


if __name__ == "__main__":
    main()
