"""Sentencepiece training and encoding with character offsets, and character ids for the char-CNN.

Piece ids are remapped from sentencepiece's order to ours, so that the softmax sees frequent pieces first
(adaptive softmax puts the head at the low ids)::

    0 <pad>   1 <s>   2 </s>   3 <unk>   4.. ordinary pieces (sentencepiece's score order)   ..end: the 256 byte pieces

sentencepiece puts its 256 byte-fallback pieces right after <unk>/<s>/</s>; they are rare, so we move them last.
"""

from __future__ import annotations

import io
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, NamedTuple, Sequence

import numpy as np
import sentencepiece as spm

from .config import CharMode
from .errors import TokenizerError

log = logging.getLogger(__name__)

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SPECIAL_PIECES = ("<pad>", "<s>", "</s>", "<unk>")
WORD_BOUNDARY = "\u2581"  # sentencepiece's "▁", written before a piece that starts a word

# ---------------------------------------------------------------------------------------------
# training


COVERAGES = (0.9995, 0.999, 0.995, 0.99, 0.98)  # tried in turn while the vocabulary is too small (>= 0.98: sentencepiece)


def train_sentencepiece(sentences: Callable[[], Iterable[str]] | Sequence[str], vocab_size: int, *,
                        boundary_piece: bool = False, input_sentence_size: int = 1_000_000,
                        seed_sentencepiece_size: int = 1_000_000) -> bytes:
    """Train a unigram sentencepiece model with byte fallback and return the serialized model.

    `sentences`: a list of texts, or a function returning a fresh iterator over them (a corpus on disk).
    `vocab_size` is a soft limit (hard_vocab_limit=False): a small corpus gets as many pieces as it supports.
    Byte fallback means no text is ever <unk>: a character outside the vocabulary becomes its UTF-8 bytes.
    Korean text has thousands of distinct syllables; when they do not fit in `vocab_size`, the character
    coverage is lowered step by step (the rarest characters then go through byte fallback).
    With `boundary_piece`, "▁" (a space) is always a piece of its own, never the start of a longer one: a word
    is then spelled with the same pieces wherever it stands ("▁연 패" after a space and "연 패" after a digit
    become "▁ 연 패" and "연 패"), at the cost of one more piece per word.
    """
    read = sentences if callable(sentences) else (lambda: iter(sentences))
    needed = None
    for coverage in COVERAGES:
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(read()), model_writer=model, vocab_size=vocab_size, model_type="unigram",
                byte_fallback=True, hard_vocab_limit=False, character_coverage=coverage,
                input_sentence_size=input_sentence_size, shuffle_input_sentence=True,
                seed_sentencepiece_size=seed_sentencepiece_size, max_sentence_length=16384,
                train_extremely_large_corpus=False, num_threads=2, minloglevel=2,
                user_defined_symbols=[WORD_BOUNDARY] if boundary_piece else [],
            )
        except RuntimeError as error:
            message = str(error)
            if "required_chars" in message or "smaller than required" in message:
                needed = message
                continue
            if "No sentence" in message or "empty" in message.lower():
                raise TokenizerError("the corpus holds no text to train a tokenizer on") from None
            raise TokenizerError(f"sentencepiece training failed: {message}") from None
        if coverage != COVERAGES[0]:
            log.warning("--vocab-size %d: character coverage lowered to %s so that the characters fit; "
                        "rarer characters are spelled as UTF-8 bytes", vocab_size, coverage)
        return model.getvalue()
    counts = re.search(r"(\d+) vs (\d+)", needed or "")
    need = f" (it needs more than {counts.group(2)})" if counts else ""
    raise TokenizerError(f"--vocab-size {vocab_size} is too small for this corpus's characters even at "
                         f"{COVERAGES[-1]} character coverage{need}; use a larger --vocab-size")


# ---------------------------------------------------------------------------------------------
# encoding


class Encoding(NamedTuple):
    """One text's pieces. char_start/char_end index the original text (characters, not bytes).

    A piece's span skips the whitespace its "▁" stands for: in "이 팀은", "▁팀" covers "팀" only.
    Pieces that cover no character (the first bytes of a byte-fallback character) get the span of the
    character they help spell.
    """

    piece_ids: list[int]
    pieces: list[str]
    char_start: list[int]
    char_end: list[int]


class Tokenizer:
    """A sentencepiece model with our id order and character offsets.

    >>> tokenizer = Tokenizer.from_file("models/ko/tokenizer.model")      # doctest: +SKIP
    >>> tokenizer.encode_with_offsets("이 팀은 3연패를").pieces             # doctest: +SKIP
    ['▁이', '▁팀', '은', '▁3', '연패', '를']
    """

    def __init__(self, model_proto: bytes, source: str = "tokenizer.model"):
        try:
            self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        except (RuntimeError, OSError, TypeError) as error:
            raise TokenizerError(f"{source} is not a sentencepiece model ({error})") from None
        self.model_proto = model_proto
        sp_size = self.sp.get_piece_size()
        ordinary = [i for i in range(sp_size) if not (self.sp.is_control(i) or self.sp.is_unknown(i) or self.sp.is_byte(i))]
        byte_pieces = [i for i in range(sp_size) if self.sp.is_byte(i)]
        # ours -> sentencepiece; -1 for <pad>, which sentencepiece does not have
        self._ours_to_sp = np.array([-1, self.sp.bos_id(), self.sp.eos_id(), self.sp.unk_id()] + ordinary + byte_pieces,
                                    dtype=np.int64)
        self._sp_to_ours = np.zeros(sp_size, dtype=np.int64)
        for ours, sp_id in enumerate(self._ours_to_sp):
            if sp_id >= 0:
                self._sp_to_ours[sp_id] = ours
        self.pieces = list(SPECIAL_PIECES) + [self.sp.id_to_piece(int(i)) for i in self._ours_to_sp[4:]]
        self.is_byte_piece = np.array([False] * 4 + [bool(self.sp.is_byte(int(i))) for i in self._ours_to_sp[4:]])

    @classmethod
    def from_file(cls, path: Path) -> "Tokenizer":
        path = Path(path)
        if not path.is_file():
            raise TokenizerError(f"{path} not found")
        return cls(path.read_bytes(), source=str(path))

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Piece ids (ours) of each text, without <s> and </s>."""
        return [self._sp_to_ours[ids].tolist() if ids else [] for ids in self.sp.encode(list(texts))]

    def encode_sampled(self, texts: Sequence[str], alpha: float, seed: int) -> list[list[int]]:
        """Like encode, but each text's segmentation is sampled from the tokenizer's lattice (subword
        regularization, Kudo 2018; alpha: sentencepiece's smoothing, lower is more varied). Within one process
        the same seed gives the same segmentations (sentencepiece seeds each thread it starts from its global
        seed, and the batch is encoded by one new thread); another process draws others: sentencepiece 0.2.3's
        sampling is not reproducible across processes even with the seed set (measured, session 28)."""
        spm.set_random_generator_seed(seed)
        sampled = self.sp.encode(list(texts), enable_sampling=True, alpha=alpha, nbest_size=-1, num_threads=1)
        return [self._sp_to_ours[ids].tolist() if ids else [] for ids in sampled]

    def encode_with_offsets(self, text: str) -> Encoding:
        """Pieces of one text with their character spans in `text` (see Encoding)."""
        proto = self.sp.encode(text, out_type="proto")
        byte_to_char = _byte_to_char_table(text)
        ids, pieces, starts, ends = [], [], [], []
        for piece in proto.pieces:
            ids.append(int(self._sp_to_ours[piece.id]))
            pieces.append(piece.piece)
            start, end = byte_to_char[piece.begin], byte_to_char[piece.end]
            while start < end and text[start].isspace():  # the "▁" stands for whitespace that no word owns
                start += 1
            starts.append(start)
            ends.append(end)
        # a piece covering nothing takes the span of the next piece that covers something
        next_start, next_end = len(text), len(text)
        for i in range(len(ids) - 1, -1, -1):
            if starts[i] >= ends[i]:
                starts[i], ends[i] = next_start, next_end
            else:
                next_start, next_end = starts[i], ends[i]
        return Encoding(ids, pieces, starts, ends)

    def decode(self, piece_ids: Sequence[int]) -> str:
        sp_ids = [int(self._ours_to_sp[i]) for i in piece_ids if i >= 4 or i == UNK_ID]
        return self.sp.decode(sp_ids)


def _byte_to_char_table(text: str) -> list[int]:
    """table[b] = index of the character that UTF-8 byte b of `text` belongs to; table[len(bytes)] = len(text).

    Worked example: "a연b" has bytes a|EC 97 B0|b, so the table is [0, 1, 1, 1, 2, 3].
    """
    table = []
    for index, char in enumerate(text):
        table.extend([index] * len(char.encode("utf-8")))
    table.append(len(text))
    return table


# ---------------------------------------------------------------------------------------------
# character ids for the char-CNN

PAD_CHAR, BEGIN_PIECE, END_PIECE, UNK_CHAR, BOS_CHAR, EOS_CHAR = range(6)
FIRST_BYTE = 6  # ids 6..261 are the 256 byte values, in every mode (byte-fallback pieces use them)
FIRST_SYMBOL = FIRST_BYTE + 256  # chars and jamo modes: their symbols start here

_HANGUL_BASE, _HANGUL_LAST = 0xAC00, 0xD7A3
_LEADS, _VOWELS, _TAILS = 19, 21, 28


def decompose_hangul(text: str) -> str:
    """Split precomposed Hangul syllables into conjoining jamo by Unicode arithmetic; keep other characters.

    A syllable is 0xAC00 + (lead * 21 + vowel) * 28 + tail. Worked example: "한" = U+D55C,
    0xD55C - 0xAC00 = 10588 = (18 * 21 + 0) * 28 + 4, so lead 18 (ᄒ U+1112), vowel 0 (ᅡ U+1161),
    tail 4 (ᆫ U+11AB): "한" -> "한".
    """
    out = []
    for char in text:
        code = ord(char)
        if _HANGUL_BASE <= code <= _HANGUL_LAST:
            offset = code - _HANGUL_BASE
            lead, rest = divmod(offset, _VOWELS * _TAILS)
            vowel, tail = divmod(rest, _TAILS)
            out.append(chr(0x1100 + lead) + chr(0x1161 + vowel) + (chr(0x11A7 + tail) if tail else ""))
        else:
            out.append(char)
    return "".join(out)


def _piece_symbols(piece: str, mode: CharMode) -> str:
    text = piece.replace(WORD_BOUNDARY, " ")  # the word-boundary mark becomes a space character
    return decompose_hangul(text) if mode == "jamo" else text


@dataclass(frozen=True)
class CharVocabulary:
    """Symbols of the chars/jamo modes: every symbol that occurs in the tokenizer's pieces, sorted.

    Built from the pieces (which sentencepiece chose from the corpus), so it needs no extra pass over the
    corpus and is the same every time it is rebuilt from the same tokenizer.model.
    """

    symbols: tuple[str, ...]

    @classmethod
    def from_pieces(cls, pieces: Sequence[str], is_byte: Sequence[bool], mode: CharMode) -> "CharVocabulary":
        found = set()
        for piece, byte in zip(pieces[4:], is_byte[4:]):
            if not byte:
                found.update(_piece_symbols(piece, mode))
        return cls(tuple(sorted(found)))

    @property
    def size(self) -> int:
        return FIRST_SYMBOL + len(self.symbols)


def char_table(tokenizer: Tokenizer, mode: CharMode, max_chars: int) -> np.ndarray:
    """Character ids of every piece: (vocab, max_chars) int64.

    Each row is [BEGIN_PIECE, symbols..., END_PIECE, PAD_CHAR...], cut to max_chars (END kept).
    bytes: a symbol is a UTF-8 byte (ELMo's scheme; 262 ids in all). chars: a character of the pieces.
    jamo: like chars, with Hangul syllables split into jamo. Byte-fallback pieces are their one byte
    in every mode; <s> and </s> are one mark each; <pad> is all padding.
    """
    if mode not in ("bytes", "chars", "jamo"):
        raise TokenizerError(f"unknown char mode {mode!r}; use bytes, chars or jamo")
    vocabulary = CharVocabulary.from_pieces(tokenizer.pieces, tokenizer.is_byte_piece, mode)
    symbol_ids = {symbol: FIRST_SYMBOL + i for i, symbol in enumerate(vocabulary.symbols)}
    table = np.full((tokenizer.vocab_size, max_chars), PAD_CHAR, dtype=np.int64)
    for piece_id, piece in enumerate(tokenizer.pieces):
        if piece_id == PAD_ID:
            continue
        if piece_id in (BOS_ID, EOS_ID, UNK_ID):
            inner = [{BOS_ID: BOS_CHAR, EOS_ID: EOS_CHAR, UNK_ID: UNK_CHAR}[piece_id]]
        elif tokenizer.is_byte_piece[piece_id]:
            inner = [FIRST_BYTE + int(piece[3:5], 16)]  # "<0xEB>" -> 0xEB
        elif mode == "bytes":
            inner = [FIRST_BYTE + b for b in _piece_symbols(piece, mode).encode("utf-8")]
        else:
            inner = [symbol_ids.get(symbol, UNK_CHAR) for symbol in _piece_symbols(piece, mode)]
        row = [BEGIN_PIECE] + inner[: max_chars - 2] + [END_PIECE]
        table[piece_id, : len(row)] = row
    return table


def char_vocab_size(tokenizer: Tokenizer, mode: CharMode) -> int:
    if mode == "bytes":
        return FIRST_SYMBOL
    return CharVocabulary.from_pieces(tokenizer.pieces, tokenizer.is_byte_piece, mode).size


def normalize_line(text: str) -> str:
    """What the corpus reader does to every line: NFC (so decomposed jamo compose), no NUL, no BOM, no CR."""
    return unicodedata.normalize("NFC", text.replace("\x00", "").replace("\ufeff", "").rstrip("\r\n"))
