"""Does a word's segmentation decide its nearest neighbour before its sense does?

    python -m benchmarks.segmentation_neighbours MODEL                          the development set (../shared)
    python -m benchmarks.segmentation_neighbours MODEL --bundled [--word 연패]   the bundled Korean probe set

The same word is not always spelled with the same pieces: "연패" is "▁연" "패" after a space and "연" "패" after
a digit ("4연패"), and "사과" may be one piece in one model and two in another. One biLM pass over the
occurrences (float32, the library's mean pooling, as `benchmarks.span_pooling`), then per layer, over all
occurrences (not the mean over words):

    1-NN               leave-one-out 1-NN sense accuracy over all of the word's other occurrences
    NN same segm.      how often that nearest neighbour is spelled with the same pieces
    candidates         how often a candidate is (what the previous line would be if segmentation did not matter)
    1-NN same segm.    1-NN sense accuracy when only occurrences spelled the same way may be the neighbour
    1-NN other segm.   ... when only occurrences spelled another way may be (each over its own occurrences)
    chance other       what a random one of those other-spelled candidates would score

and the same 1-NN over vectors minus the mean of their (word, segmentation) group, taken from the probe
occurrences themselves without their labels. Ties share the credit, as in `evaluation.probe`.

--without-boundary leaves a lone "▁" piece (a space spelled apart, which the library pools into the word after
it) out of both the vectors and the spelling: for models pretrained with `--boundary-piece`.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from typing import NamedTuple, Sequence

import numpy as np

import contextemb
from contextemb.evaluation.dev_homographs import load_dev_probes
from contextemb.evaluation.probe_sets import Probe, bundled_probe_file, read_probes
from contextemb.tokenization import WORD_BOUNDARY

from .span_pooling import piece_group, span_vectors


class SegmentationNeighbours(NamedTuple):
    accuracy: float  # 1-NN sense accuracy, any neighbour
    shares_segmentation: float  # the nearest neighbour is spelled with the same pieces
    candidates_sharing: float  # the share of candidates spelled with the same pieces
    accuracy_same: float  # 1-NN among same-segmentation candidates (nan where none has one)
    occurrences_same: int
    accuracy_other: float  # 1-NN among other-segmentation candidates
    occurrences_other: int
    chance_other: float  # a random other-segmentation candidate's sense accuracy


def _nearest(scores: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """The candidates (indices into scores) tied for the highest score: each gets an equal share of the credit,
    as in `evaluation.probe.nearest_neighbour_hits`."""
    values = scores[candidates]
    return candidates[np.isclose(values, values.max(), rtol=0, atol=1e-6)]


def segmentation_neighbours(vectors: np.ndarray, words: Sequence[str], senses: Sequence[str],
                            segmentations: Sequence[tuple[str, ...]]) -> SegmentationNeighbours:
    """vectors: (occurrences, dim); each occurrence's word, sense label and pieces. Neighbours are looked for
    among the other occurrences of the same word, by cosine."""
    words, senses = np.asarray(words), np.asarray(senses)
    spelled = np.array(["\x00".join(pieces) for pieces in segmentations])
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    hits, shares, candidates_sharing, same_hits, other_hits, other_chance = [], [], [], [], [], []
    for word in np.unique(words):
        indices = np.flatnonzero(words == word)
        similarity = unit[indices] @ unit[indices].T
        for row, index in enumerate(indices):
            others = np.delete(np.arange(len(indices)), row)
            if not len(others):
                continue
            scores, same = similarity[row], spelled[indices] == spelled[index]
            right = senses[indices] == senses[index]  # which of the word's occurrences share this one's sense
            best = _nearest(scores, others)
            hits.append(np.mean(right[best]))
            shares.append(np.mean(same[best]))
            candidates_sharing.append(np.mean(same[others]))
            same_others, other_others = others[same[others]], others[~same[others]]
            if len(same_others):
                same_hits.append(np.mean(right[_nearest(scores, same_others)]))
            if len(other_others):
                other_hits.append(np.mean(right[_nearest(scores, other_others)]))
                other_chance.append(np.mean(right[other_others]))
    mean = lambda values: float(np.mean(values)) if values else float("nan")  # noqa: E731
    return SegmentationNeighbours(mean(hits), mean(shares), mean(candidates_sharing), mean(same_hits),
                                  len(same_hits), mean(other_hits), len(other_hits), mean(other_chance))


def centred_by_segmentation(vectors: np.ndarray, words: Sequence[str],
                            segmentations: Sequence[tuple[str, ...]]) -> np.ndarray:
    """vectors (layers, occurrences, dim) minus the mean of each (word, segmentation) group's vectors."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for index, key in enumerate(zip(words, segmentations)):
        groups[key].append(index)
    centred = vectors.copy()
    for indices in groups.values():
        centred[:, indices] -= vectors[:, indices].mean(axis=1, keepdims=True)
    return centred


def probe_segmentations(embedder: contextemb.Embedder, probes: Sequence[Probe],
                        without_boundary: bool = False) -> list[tuple[str, ...]]:
    """Each probe's span as the pieces that spell it (without a lone "▁" if asked, unless it is all there is)."""
    segmentations = []
    for probe in probes:
        encoding = embedder.encode(probe.text)
        pieces = tuple(encoding.pieces[i] for i in piece_group(probe, encoding))
        spelled = tuple(piece for piece in pieces if piece != WORD_BOUNDARY)
        segmentations.append(spelled if without_boundary and spelled else pieces)
    return segmentations


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--bundled", action="store_true", help="the bundled Korean probe set, not the dev set")
    parser.add_argument("--word", help="only this word's occurrences")
    parser.add_argument("--without-boundary", action="store_true", help='leave a lone "▁" piece out')
    args = parser.parse_args(argv)
    embedder = contextemb.load(args.model, precision="float32")
    probes = read_probes(bundled_probe_file("ko"), word=args.word) if args.bundled else load_dev_probes(word=args.word)
    vectors = span_vectors(embedder, probes)[0]["mean, no ▁" if args.without_boundary else "mean"]  # (layers, n, dim)
    words, senses = [p.word for p in probes], [p.sense for p in probes]
    segmentations = probe_segmentations(embedder, probes, args.without_boundary)
    spellings = len(set(zip(words, segmentations)))
    print(f"{args.model}: {len(probes)} occurrences of {len(set(words))} words in {spellings} segmentations")
    print(f"{'':8s} {'1-NN':>6s} {'NN same segm.':>14s} {'candidates':>11s} {'1-NN same segm.':>16s} "
          f"{'1-NN other segm.':>17s} {'chance other':>13s} {'1-NN centred':>13s}")
    centred = centred_by_segmentation(vectors, words, segmentations)
    for layer in range(vectors.shape[0]):
        report = segmentation_neighbours(vectors[layer], words, senses, segmentations)
        after = segmentation_neighbours(centred[layer], words, senses, segmentations)
        print(f"layer {layer:<2d} {report.accuracy:6.3f} {report.shares_segmentation:14.3f} "
              f"{report.candidates_sharing:11.3f} {report.accuracy_same:9.3f} (n={report.occurrences_same:3d}) "
              f"{report.accuracy_other:10.3f} (n={report.occurrences_other:3d}) {report.chance_other:13.3f} "
              f"{after.accuracy:13.3f}", flush=True)


if __name__ == "__main__":
    main()
