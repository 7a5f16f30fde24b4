"""The static baseline: gensim Word2Vec over the same text with the same pre-tokenisation as the biLM.

Pre-tokenisation (chosen, and the same everywhere): the contextual model's own sentencepiece pieces. The
corpus is encoded with the model's tokenizer and Word2Vec learns one vector per piece. A word's static
vector is the mean of the vectors of the pieces it is spelled with on its own (tokenizer.encode([word])),
so it is the same in every context, which is what "static" means; pieces are also what the biLM reads, so
neither side gets a vocabulary the other lacks.

Files are word2vec's binary format (gensim KeyedVectors.save_word2vec_format), never a pickle, with a
JSON sidecar naming the tokenizer they were trained with.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from contextemb.corpus import iter_text
from contextemb.errors import ModelFormatError
from contextemb.io import atomic_write, atomic_write_text
from contextemb.tokenization import Tokenizer

log = logging.getLogger(__name__)


class PieceSentences:
    """Re-iterable corpus of piece strings per line, streamed (gensim iterates once per epoch)."""

    def __init__(self, corpus: Path, tokenizer: Tokenizer, chunk_lines: int = 4096):
        self.corpus, self.tokenizer, self.chunk_lines = Path(corpus), tokenizer, chunk_lines

    def __iter__(self) -> Iterator[list[str]]:
        chunk: list[str] = []
        for text in iter_text(self.corpus):
            chunk.append(text)
            if len(chunk) == self.chunk_lines:
                yield from self._pieces(chunk)
                chunk = []
        yield from self._pieces(chunk)

    def _pieces(self, texts: list[str]) -> Iterator[list[str]]:
        for ids in self.tokenizer.encode(texts):
            yield [self.tokenizer.pieces[i] for i in ids]


def tokenizer_digest(tokenizer: Tokenizer) -> str:
    return hashlib.sha256(tokenizer.model_proto).hexdigest()


class TrainedWord2Vec(NamedTuple):
    pieces: int
    seconds: float


def train_word2vec(corpus: Path, tokenizer: Tokenizer, out: Path, *, dim: int = 300, epochs: int = 5,
                   window: int = 5, min_count: int = 5, workers: int = 2, seed: int = 1) -> TrainedWord2Vec:
    """Skip-gram Word2Vec over the corpus's pieces; writes `out` (binary word2vec) and `out`.json."""
    from gensim.models import Word2Vec

    started = time.perf_counter()
    model = Word2Vec(sentences=PieceSentences(corpus, tokenizer), vector_size=dim, window=window,
                     min_count=min_count, sg=1, epochs=epochs, workers=workers, seed=seed)
    out = Path(out)
    atomic_write(out, lambda tmp: model.wv.save_word2vec_format(str(tmp), binary=True))
    atomic_write_text(out.with_name(out.name + ".json"), json.dumps({
        "format": "word2vec-binary", "pre_tokenisation": "sentencepiece pieces",
        "tokenizer_sha256": tokenizer_digest(tokenizer), "dim": dim, "epochs": epochs, "window": window,
        "min_count": min_count, "sg": 1, "corpus": str(corpus)}, indent=2))
    return TrainedWord2Vec(len(model.wv), time.perf_counter() - started)


class StaticVectors:
    """Word2Vec piece vectors; vector(word) is the same in every context."""

    def __init__(self, path: Path, tokenizer: Tokenizer):
        from gensim.models import KeyedVectors

        path = Path(path)
        if not path.is_file():
            raise ModelFormatError(f"{path} not found (train it with `contextemb word2vec`)")
        sidecar = path.with_name(path.name + ".json")
        if sidecar.is_file():
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
            if meta.get("tokenizer_sha256") != tokenizer_digest(tokenizer):
                raise ModelFormatError(f"{path} was trained with another tokenizer than this model's; "
                                       f"retrain it with `contextemb word2vec CORPUS --model MODEL`")
        try:
            self.vectors = KeyedVectors.load_word2vec_format(str(path), binary=True)
        except (ValueError, UnicodeDecodeError, EOFError) as error:
            raise ModelFormatError(f"{path} is not a binary word2vec file ({error})") from None
        self.path = path
        self.tokenizer = tokenizer

    def vector(self, word: str) -> np.ndarray:
        """(dim,) mean vector of the pieces `word` is spelled with alone; KeyError if none is known."""
        pieces = [self.tokenizer.pieces[i] for i in self.tokenizer.encode([word])[0]]
        known = [self.vectors[p] for p in pieces if p in self.vectors.key_to_index]
        if not known:
            raise KeyError(f"none of the pieces {pieces} of {word!r} is in the Word2Vec vocabulary")
        return np.mean(known, axis=0)
