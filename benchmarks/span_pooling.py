"""Does the way a word's pieces are pooled, or a post-processing of the vectors, change homograph 1-NN?

    python -m benchmarks.span_pooling MODEL                          the development set (needs ../shared)
    python -m benchmarks.span_pooling MODEL --bundled [--word 연패]   the bundled Korean probe set
    python -m benchmarks.span_pooling MODEL --stats-text FILE        also centred / standardised vectors

One biLM pass over the occurrences (float32), then per-layer and even-mix 1-NN sense accuracy (the mean over
words, as `contextemb probe` reports it) for each way of turning a span's pieces into one vector:

    mean         the mean of the pieces' vectors (the library's default, `pool="mean"`)
    mean, no ▁   the same without a lone "▁" piece (a space the tokenizer spelled apart; the library gives it
                 the span of the piece after it, so it is pooled into the word): with `--boundary-piece`
                 tokenizers every word after a space has one, none after a digit
    first, last  the first or the last piece's vector
    directional  the forward half from the last piece and the backward half from the first: the states that
                 have read the whole word and its context (Flair's choice for its character LMs)
    context      the forward state before the word's first piece (<s> at the start) and the backward state
                 after its last (</s> at the end): neither has read the word, only its context (context2vec,
                 Melamud et al., 2016); layer 0 is then the embeddings of the neighbouring pieces
    token mean, token directional
                 mean and directional over the whole whitespace-delimited token that holds the word (연패 in
                 "4연패를" is pooled as "4연패를"): Flair's word vectors; the forward state after a Korean
                 word's particle predicts the next word, the backward state before it the previous one

With --stats-text, also the mean-pooled vectors minus the per-layer, per-dimension mean of the word vectors of
FILE's first 3,000 lines (centred), and divided by their standard deviation too (standardised). FILE must not
hold the probe sentences.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

import contextemb
from contextemb.alignment import check_span, overlapping_pieces
from contextemb.evaluation.dev_homographs import load_dev_probes
from contextemb.evaluation.probe import group_by_word, sense_metrics
from contextemb.evaluation.probe_sets import Probe, bundled_probe_file, read_probes
from contextemb.tokenization import WORD_BOUNDARY

POOLINGS = ("mean", "mean, no ▁", "first", "last", "directional", "context", "token mean",
            "token directional")


def piece_group(probe: Probe, encoding) -> list[int]:
    """The indices of the pieces of `encoding` (the probe text's) that overlap the probe's span."""
    return overlapping_pieces(encoding.char_start, encoding.char_end, check_span(probe.text, probe.start, probe.end))


def token_group(probe: Probe, encoding) -> list[int]:
    """The indices of the pieces that overlap the whitespace-delimited token holding the probe's span."""
    start, end = probe.start, probe.end
    while start > 0 and not probe.text[start - 1].isspace():
        start -= 1
    while end < len(probe.text) and not probe.text[end].isspace():
        end += 1
    return overlapping_pieces(encoding.char_start, encoding.char_end, check_span(probe.text, start, end))


def directional(vectors: np.ndarray, group: list[int]) -> np.ndarray:
    """(layers, dim): the forward half from the group's last piece, the backward half from its first."""
    half = vectors.shape[-1] // 2
    return np.concatenate([vectors[:, group[-1], :half], vectors[:, group[0], half:]], -1)


def span_vectors(embedder: contextemb.Embedder, probes: Sequence[Probe]) -> tuple[dict[str, np.ndarray], list[int]]:
    """(pooling name -> (layers, occurrences, dim) vectors of every probe's span, each span's number of pieces)."""
    encodings = [embedder.encode(probe.text) for probe in probes]
    with torch.inference_mode():
        piece_vectors = embedder.piece_vectors(encodings)  # per probe (layers, pieces, dim)
    pooled: dict[str, list[np.ndarray]] = {name: [] for name in POOLINGS}
    sizes = []
    for probe, encoding, vectors in zip(probes, encodings, piece_vectors):
        vectors = vectors.float().cpu().numpy()
        group = piece_group(probe, encoding)
        sizes.append(len(group))
        pooled["mean"].append(vectors[:, group].mean(axis=1))
        spelled = [i for i in group if encoding.pieces[i] != WORD_BOUNDARY] or group
        pooled["mean, no ▁"].append(vectors[:, spelled].mean(axis=1))
        pooled["first"].append(vectors[:, group[0]])
        pooled["last"].append(vectors[:, group[-1]])
        pooled["directional"].append(directional(vectors, group))
        pooled["context"].append(context_vectors(embedder, encoding, group))
        token = token_group(probe, encoding)
        pooled["token mean"].append(vectors[:, token].mean(axis=1))
        pooled["token directional"].append(directional(vectors, token))
    return {name: np.stack(rows, axis=1) for name, rows in pooled.items()}, sizes


def context_vectors(embedder: contextemb.Embedder, encoding, group: list[int]) -> np.ndarray:
    """(layers, dim): the forward states just before piece group[0] and the backward states just after
    group[-1], from the biLM's rows with <s> and </s> (see contextemb.bilm for their layout)."""
    pieces = len(encoding.piece_ids)
    with torch.inference_mode():
        forward_states, backward_states = embedder.bilm._states([encoding.piece_ids])  # per layer (1, n + 2, proj)
    # piece i sits at forward position i + 1 and backward position n - i: the forward state before the word is
    # at position group[0] (<s> when 0), the backward state after it at n - group[-1] - 1 (</s> when 0)
    return np.stack([np.concatenate([forward[0, group[0]].float().cpu().numpy(),
                                     backward[0, pieces - group[-1] - 1].float().cpu().numpy()])
                     for forward, backward in zip(forward_states, backward_states)])


def accuracy_row(vectors: np.ndarray, probes: Sequence[Probe]) -> list[float]:
    """Per layer and the even mix: the mean over words of 1-NN sense accuracy; vectors (layers, n, dim)."""
    groups = group_by_word(probes)
    row = []
    for matrix in [*vectors, vectors.mean(axis=0)]:
        row.append(float(np.mean([sense_metrics(matrix[indices], [probes[i].sense for i in indices],
                                                samples=1).accuracy
                                  for indices in groups.values()])))
    return row


def layer_statistics(embedder: contextemb.Embedder, path: Path, lines: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    """Per layer and dimension, the mean and standard deviation (layers, 1, dim) of the word vectors of the
    first `lines` non-blank lines of path."""
    with path.open(encoding="utf-8") as handle:
        texts = [line.strip() for line in itertools.islice(handle, lines) if line.strip()]
    words = np.concatenate([text.vectors for text in embedder.embed(texts) if text.vectors.shape[1]], axis=1)
    return words.mean(axis=1, keepdims=True), words.std(axis=1, keepdims=True) + 1e-6


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--bundled", action="store_true", help="the bundled Korean probe set, not the dev set")
    parser.add_argument("--word", help="only this word's occurrences")
    parser.add_argument("--stats-text", type=Path, help="also centred and standardised vectors, by this text")
    args = parser.parse_args(argv)
    embedder = contextemb.load(args.model, precision="float32")
    probes = read_probes(bundled_probe_file("ko"), word=args.word) if args.bundled else load_dev_probes(word=args.word)
    pooled, sizes = span_vectors(embedder, probes)
    print(f"{args.model}: {len(probes)} occurrences of {len(group_by_word(probes))} words, "
          f"{sum(size > 1 for size in sizes)} spanning several pieces")
    layers = pooled["mean"].shape[0]
    print(f"{'vectors':17s} " + " ".join(f"{f'layer {k}':>7s}" for k in range(layers)) + f" {'mix':>7s}")
    rows = dict(pooled)
    if args.stats_text is not None:
        mean, std = layer_statistics(embedder, args.stats_text)
        rows["centred"] = pooled["mean"] - mean
        rows["standardised"] = (pooled["mean"] - mean) / std
    for name, vectors in rows.items():
        print(f"{name:17s} " + " ".join(f"{value:7.3f}" for value in accuracy_row(vectors, probes)), flush=True)


if __name__ == "__main__":
    main()
