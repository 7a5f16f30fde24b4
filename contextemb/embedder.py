"""Embedder: contextual vectors per word (or piece) and per character span, for every layer.

>>> emb = contextemb.load("ko-nsmc-small")                                   # doctest: +SKIP
>>> out = emb.embed(["삼성, 사상 첫 통합우승 4연패"])                            # doctest: +SKIP
>>> out[0].words, out[0].vectors.shape                                       # doctest: +SKIP
(['삼성,', '사상', '첫', '통합우승', '4연패'], (3, 5, 512))
>>> emb.embed_span("삼성, 사상 첫 통합우승 4연패", 15, 17).shape                  # doctest: +SKIP
(3, 512)

Layer 0 holds both token encoders' outputs, layers 1..L the LSTM layers; each layer's vector is the forward
state and the backward state concatenated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, TypeVar, Union

import numpy as np
import torch
from torch import Tensor

from . import batching
from .alignment import (POOLS, Pool, Span, Unit, check_span, overlapping_pieces, pooling_matrix, word_groups,
                        word_pooling)
from .bilm import BiLM
from .config import ModelConfig
from .cpu_features import choose_precision
from .devices import resolve_device
from .encoders import CharCNN
from .errors import ConfigError, DataFormatError
from .model_dir import load_model_dir
from .packaged import resolve_model
from .quantization import bfloat16_lstms, quantize_bilm
from .threads import call_with_threads
from .tokenization import Encoding, Tokenizer

log = logging.getLogger(__name__)

Array = Union[np.ndarray, Tensor]
Result = TypeVar("Result")


@dataclass(frozen=True)
class EmbeddedText:
    """One text's vectors. words: the words (or pieces, with unit="piece"); spans: their character spans in
    text; vectors: (layers, len(words), dim), numpy float32 or a torch tensor."""

    text: str
    words: list[str]
    spans: list[Span]
    vectors: Array


BATCH_TEXTS = 512  # at most this many texts in a batch ...
BATCH_PIECES = 4096  # ... and at most this many pieces, padding and <s>, </s> included (batch rows x width)
# (measured on 2 cores, bf16 and int8, 5,000 NSMC reviews: 10-18% faster than fixed batches of 64 texts, which
# pad short texts' batches with few rows and long texts' with much padding)


def length_batches(lengths: Sequence[int], max_texts: int = BATCH_TEXTS,
                   max_pieces: int = BATCH_PIECES) -> list[list[int]]:
    """Indices of texts of `lengths` pieces grouped into batches, shortest first: each batch holds at most
    max_texts texts and, padded to its longest text plus <s> and </s>, at most max_pieces pieces. A text
    longer than max_pieces gets a batch of its own."""
    if max_texts < 1:
        raise ConfigError(f"batch_size must be >= 1, got {max_texts}")
    if max_pieces < 1:
        raise ConfigError(f"batch_pieces must be >= 1, got {max_pieces}")
    return batching.length_batches([n + 2 for n in lengths], max_rows=max_texts, max_tokens=max_pieces)


def check_texts(texts: Sequence[str], caller: str = "embed()") -> list[str]:
    """`texts` as a list, TypeError unless it is a sequence of str (a single str is refused, not split)."""
    if isinstance(texts, str):
        raise TypeError(f"{caller} takes a list of texts; wrap a single text in a list")
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] is {type(text).__name__}, not str")
    return texts


class Embedder:
    """A loaded biLM with its tokenizer; see the module docstring. Build one with `contextemb.load`."""

    def __init__(self, config: ModelConfig, tokenizer: Tokenizer, bilm: BiLM, name: str = ""):
        self.config = config
        self.tokenizer = tokenizer
        self.bilm = bilm.eval()
        self.name = name

    @property
    def num_layers(self) -> int:
        return self.bilm.num_layers

    @property
    def dim(self) -> int:
        return self.bilm.dim

    @property
    def device(self) -> torch.device:
        return next(self.bilm.parameters()).device

    def encode(self, text: str) -> Encoding:
        """Pieces of `text` with character spans in `text`."""
        return self.tokenizer.encode_with_offsets(text)

    def piece_vectors(self, encodings: Sequence[Encoding], batch_size: int = BATCH_TEXTS,
                      batch_pieces: int = BATCH_PIECES) -> list[Tensor]:
        """(layers, pieces, dim) tensors for each encoding, in input order; gradients follow the caller's mode.

        Texts are run shortest first, in batches of at most batch_size texts and batch_pieces padded pieces
        (see `length_batches`); the vectors do not depend on either.
        """
        results: list[Optional[Tensor]] = [None] * len(encodings)
        lengths = [len(encoding.piece_ids) for encoding in encodings]
        for batch in length_batches(lengths, batch_size, batch_pieces):
            for index, vectors in zip(batch, self.bilm([encodings[i].piece_ids for i in batch])):
                results[index] = vectors
        return results  # type: ignore[return-value]

    def embed(self, texts: Sequence[str], *, unit: Unit = "word", pool: Pool = "mean",
              batch_size: int = BATCH_TEXTS, batch_pieces: int = BATCH_PIECES,
              return_tensors: bool = False) -> list[EmbeddedText]:
        """Vectors of every word (whitespace-separated; pieces pooled by `pool`) or piece of each text.

        Returns EmbeddedText per text, in input order; vectors (layers, words, dim). An empty or blank text
        gets no words and vectors of shape (layers, 0, dim). batch_size and batch_pieces bound a batch (texts,
        padded pieces); they change the speed and memory, never the vectors.
        """
        texts = check_texts(texts)
        results: list[Optional[EmbeddedText]] = [None] * len(texts)
        for index, result in self.iter_embed(texts, unit=unit, pool=pool, batch_size=batch_size,
                                             batch_pieces=batch_pieces, return_tensors=return_tensors):
            results[index] = result
        return results  # type: ignore[return-value]

    def iter_embed(self, texts: Sequence[str], *, unit: Unit = "word", pool: Pool = "mean",
                   batch_size: int = BATCH_TEXTS, batch_pieces: int = BATCH_PIECES,
                   return_tensors: bool = False) -> Iterator[tuple[int, EmbeddedText]]:
        """embed(), yielding (index in texts, EmbeddedText) as each batch is done, shortest texts first.

        Holds one batch's vectors at a time: the way to embed many texts without keeping them all.
        """
        texts = check_texts(texts)
        if unit not in ("word", "piece"):
            raise ConfigError(f"unit must be 'word' or 'piece', got {unit!r}")
        if pool not in POOLS:
            raise ConfigError(f"pool must be one of {POOLS}, got {pool!r}")
        encodings = [self.encode(text) for text in texts]
        lengths = [len(encoding.piece_ids) for encoding in encodings]
        for batch in length_batches(lengths, batch_size, batch_pieces):
            with torch.inference_mode():  # per batch, never across a yield: the caller's loop keeps its grad mode
                results = self._batch_results([texts[i] for i in batch], [encodings[i] for i in batch], unit, pool,
                                              return_tensors)
            yield from zip(batch, results)

    def _batch_results(self, texts: Sequence[str], encodings: Sequence[Encoding], unit: Unit, pool: Pool,
                       return_tensors: bool) -> list[EmbeddedText]:
        """One batch's EmbeddedTexts: the biLM once, then every text's words pooled by one batched product
        (on one CPU thread, see all_word_vectors) instead of one small product per text."""
        rows = [k for k, encoding in enumerate(encodings) if encoding.piece_ids]
        if unit == "piece":
            spans = [[Span(s, e) for s, e in zip(e.char_start, e.char_end)] for e in encodings]
            words = [list(encoding.pieces) for encoding in encodings]
        else:
            spans, matrices = [], []
            for text, encoding in zip(texts, encodings):
                text_spans, matrix = word_pooling(text, encoding.char_start, encoding.char_end, pool) \
                    if encoding.piece_ids else ([], None)
                spans.append(text_spans)
                matrices.append(matrix)
            words = [[text[s.char_start:s.char_end] for s in text_spans] for text, text_spans in zip(texts, spans)]
        empty = torch.zeros(self.num_layers, 0, self.dim, device=self.device)
        vectors: list[Array] = [empty] * len(texts)
        if rows:
            piece_ids = [encodings[k].piece_ids for k in rows]
            if unit == "piece":
                pooled = self.bilm.padded_vectors(piece_ids)  # (layers, rows, longest, dim)
            else:
                matrix = np.zeros((len(rows), max(len(spans[k]) for k in rows), max(map(len, piece_ids))),
                                  dtype=np.float32)  # (rows, most words, longest): each text's in its corner
                for row, k in enumerate(rows):
                    matrix[row, :matrices[k].shape[0], :matrices[k].shape[1]] = matrices[k]
                pooled = self.bilm.pooled_vectors(piece_ids, matrix)  # (layers, rows, words, dim)
            if not return_tensors:  # one conversion per batch; each text its own contiguous copy, so that a
                pooled = pooled.cpu().numpy()  # text the caller keeps never holds its whole batch
            for row, k in enumerate(rows):
                own = pooled[:, row, :len(spans[k])]  # (layers, words, dim)
                vectors[k] = own if return_tensors else np.ascontiguousarray(own)
        if not return_tensors:
            vectors = [v if isinstance(v, np.ndarray) else v.cpu().numpy() for v in vectors]
        return [EmbeddedText(text, text_words, text_spans, text_vectors)
                for text, text_words, text_spans, text_vectors in zip(texts, words, spans, vectors)]

    def all_word_vectors(self, texts: Sequence[str], encodings: Sequence[Encoding], piece_vectors: Sequence[Tensor],
                         unit: Unit, pool: Pool) -> list[EmbeddedText]:
        """word_vectors for every text, on one CPU thread: each text's pooling is a tiny matrix product, which
        several threads only slow down (measured: 5,000 reviews pooled in 0.5 s on one thread, 1.1-4.2 s on two)."""
        return _on_one_cpu_thread(self.device, self._each_word_vectors, texts, encodings, piece_vectors, unit, pool)

    def _each_word_vectors(self, texts: Sequence[str], encodings: Sequence[Encoding],
                           piece_vectors: Sequence[Tensor], unit: Unit, pool: Pool) -> list[EmbeddedText]:
        return [self.word_vectors(text, encoding, vectors, unit, pool)
                for text, encoding, vectors in zip(texts, encodings, piece_vectors)]

    def word_vectors(self, text: str, encoding: Encoding, vectors: Tensor, unit: Unit, pool: Pool) -> EmbeddedText:
        """Piece vectors (layers, pieces, dim) of one text -> its words' (or pieces') vectors (layers, words, dim)."""
        if unit == "piece":
            spans = [Span(s, e) for s, e in zip(encoding.char_start, encoding.char_end)]
            return EmbeddedText(text, list(encoding.pieces), spans, vectors)
        if not encoding.piece_ids:
            return EmbeddedText(text, [], [], vectors)
        spans, groups = word_groups(text, encoding.char_start, encoding.char_end)
        matrix = torch.from_numpy(pooling_matrix(groups, len(encoding.piece_ids), pool)).to(vectors)
        words = [text[span.char_start:span.char_end] for span in spans]
        return EmbeddedText(text, words, spans, torch.matmul(matrix, vectors))  # (layers, words, dim)

    def embed_span(self, text: str, start: int, end: int, *, pool: Pool = "mean",
                   return_tensors: bool = False) -> Array:
        """(layers, dim) vector of the characters text[start:end]: its overlapping pieces, pooled.

        ValueError if the span is outside the text, empty, or only whitespace.
        """
        return self.embed_spans([(text, start, end)], pool=pool, return_tensors=return_tensors)[0]

    def embed_spans(self, items: Sequence[tuple[str, int, int]], *, pool: Pool = "mean",
                    batch_size: int = BATCH_TEXTS, batch_pieces: int = BATCH_PIECES,
                    return_tensors: bool = False) -> list[Array]:
        """embed_span over many (text, start, end) at once, batched. Returns one (layers, dim) per item."""
        checked = [(text, check_span(text, start, end)) for text, start, end in items]
        encodings = [self.encode(text) for text, _ in checked]
        with torch.inference_mode():
            piece_vectors = self.piece_vectors(encodings, batch_size, batch_pieces)
            return _on_one_cpu_thread(self.device, _span_vectors, checked, encodings, piece_vectors, pool,
                                      return_tensors)


def _span_vectors(checked: Sequence[tuple[str, Span]], encodings: Sequence[Encoding], piece_vectors: Sequence[Tensor],
                  pool: Pool, return_tensors: bool) -> list[Array]:
    """(layers, dim) vector of each checked (text, span): its overlapping pieces' vectors, pooled."""
    results = []
    for (text, span), encoding, vectors in zip(checked, encodings, piece_vectors):
        group = overlapping_pieces(encoding.char_start, encoding.char_end, span)
        if not group:
            raise DataFormatError(f"span [{span.char_start}, {span.char_end}) of {text!r} has no pieces")
        matrix = torch.from_numpy(pooling_matrix([group], len(encoding.piece_ids), pool)).to(vectors)
        vector = torch.matmul(matrix, vectors)[:, 0]  # (layers, dim)
        results.append(vector if return_tensors else vector.cpu().numpy())
    return results


def _on_one_cpu_thread(device: torch.device, function: Callable[..., Result], *args: Any) -> Result:
    """function(*args) with one torch intra-op thread when on the CPU (on a worker thread if the caller has
    more: contextemb.threads; the caller's own count never changes)."""
    if device.type != "cpu":
        return function(*args)
    return call_with_threads(1, function, *args)


def load(name_or_path: Union[str, Path], device: Union[str, torch.device, None] = None,
         threads: Optional[int] = None, quantize: bool = False, precision: str = "auto") -> Embedder:
    """Load a packaged model by name (see `contextemb.list_models()`) or a model directory.

    precision: "auto" (default), "float32", "bf16" (the LSTMs in bfloat16: fast on CPUs with AVX-512 BF16 or
    AMX, and on GPUs) or "int8" (dynamic int8 LSTM and Linear layers, CPU only). bf16 and int8 are faster, with
    vectors a little off the float32 ones (see `contextemb.quantization`). "auto" picks bf16 where the CPU runs
    it natively or on a GPU, else int8 on a CPU with AVX2, else float32 (contextemb.cpu_features), and logs it.
    quantize=True is the older spelling of precision="int8".
    """
    if quantize:
        if precision not in ("auto", "int8"):
            raise ConfigError(f"quantize=True (int8) and precision={precision!r} exclude each other; choose one")
        precision = "int8"
    if precision == "int8" and device is not None and not str(device).startswith("cpu"):
        raise ConfigError(f"precision int8 (quantize=True) runs on the CPU only, not on {device}")
    target = resolve_device(device)
    precision = choose_precision(precision, target)
    device = None if device is None else resolve_device(device)
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    model_dir = resolve_model(name_or_path)
    loaded = load_model_dir(model_dir)
    bilm = BiLM(loaded.models["forward"], loaded.models["backward"])
    if device is not None:
        bilm = bilm.to(device)
    for model in (bilm.forward_lm, bilm.backward_lm):
        if isinstance(model.encoder, CharCNN):
            model.encoder.build_cache()  # every piece's char-CNN output, once: inference looks it up
    if precision == "int8":
        bilm = quantize_bilm(bilm)
    elif precision == "bf16":
        bilm = bfloat16_lstms(bilm)
    return Embedder(loaded.config, loaded.tokenizer, bilm, name=str(name_or_path))
