"""Tokenization: character offsets, char ids in three modes, and round trips over awkward text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from contextemb.alignment import Span, overlapping_pieces
from contextemb.tokenization import (BEGIN_PIECE, END_PIECE, Tokenizer, char_table, decompose_hangul,
                                     train_sentencepiece)
from contextemb.errors import TokenizerError


@pytest.fixture(scope="module")
def tokenizer(small_corpus):
    lines = small_corpus.read_text(encoding="utf-8").splitlines()
    return Tokenizer(train_sentencepiece(lines, 800))


def test_worked_offsets(tokenizer):
    """Character (not byte) offsets. A piece's span skips the space its "▁" stands for; a lone "▁" piece covers
    no character and takes the span of the piece after it. With 800 pieces from the small corpus these Hangul
    syllables are pieces of their own: 연 is character 6 of the text, bytes 12-15 of its UTF-8."""
    text = "이 팀은 3연패를"
    encoding = tokenizer.encode_with_offsets(text)
    assert encoding.pieces == ["▁", "이", "▁", "팀", "은", "▁", "3", "연", "패", "를"]
    spans = list(zip(encoding.char_start, encoding.char_end))
    assert spans == [(0, 1), (0, 1), (2, 3), (2, 3), (3, 4), (5, 6), (5, 6), (6, 7), (7, 8), (8, 9)]
    assert text.encode()[12:15].decode() == "연"  # so a byte offset would have been (12, 15)


@pytest.mark.parametrize("text", ["", "a", "가", "🙂", "삼성, 사상 첫 통합우승 4연패", "naïve café 日本語 🙂🎬", "  two  spaces  "])
def test_round_trip(tokenizer, text):
    ids = tokenizer.encode([text])[0]
    assert tokenizer.decode(ids) == " ".join(text.split())
    assert all(0 < i < tokenizer.vocab_size for i in ids)


def test_unknown_characters_fall_back_to_bytes(tokenizer):
    encoding = tokenizer.encode_with_offsets("𓀀")  # not in the corpus: spelled as UTF-8 byte pieces
    assert len(encoding.piece_ids) >= 4
    assert all(tokenizer.is_byte_piece[i] for i in encoding.piece_ids[-4:])
    assert set(zip(encoding.char_start, encoding.char_end)) == {(0, 1)}


TEXT = st.text(alphabet=st.sampled_from(list("가나다라연패배눈 abcXYZ 123,.!🙂é  한국어")), max_size=40)


@settings(max_examples=150, deadline=None)
@given(TEXT)
def test_offsets_cover_the_text_in_order(tokenizer, text):
    encoding = tokenizer.encode_with_offsets(text)
    starts, ends = encoding.char_start, encoding.char_end
    assert starts == sorted(starts) and ends == sorted(ends)
    assert all(0 <= s < e <= len(text) for s, e in zip(starts, ends))
    covered = set()
    for s, e in zip(starts, ends):
        assert text[s:e].strip() == text[s:e]  # a piece's span holds no outer whitespace
        covered.update(range(s, e))
    assert covered == {i for i, ch in enumerate(text) if not ch.isspace()}


@settings(max_examples=150, deadline=None)
@given(TEXT, st.data())
def test_span_mapping_is_monotonic(tokenizer, text, data):
    encoding = tokenizer.encode_with_offsets(text)
    if len(text) < 2:
        return
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start + 1, len(text)))
    inner_start = data.draw(st.integers(start, end - 1))
    inner_end = data.draw(st.integers(inner_start + 1, end))
    outer = overlapping_pieces(encoding.char_start, encoding.char_end, Span(start, end))
    inner = overlapping_pieces(encoding.char_start, encoding.char_end, Span(inner_start, inner_end))
    assert set(inner) <= set(outer)
    assert outer == sorted(outer) and (not outer or outer == list(range(outer[0], outer[-1] + 1)))


def test_jamo_decomposition_worked_example():
    assert decompose_hangul("한") == "\u1112\u1161\u11ab"  # ㅎ + ㅏ + ㄴ
    assert decompose_hangul("가a") == "\u1100\u1161a"
    assert decompose_hangul("ㄱ!") == "ㄱ!"


@pytest.mark.parametrize("mode", ["bytes", "chars", "jamo"])
def test_char_table_marks_and_limits(tokenizer, mode):
    table = char_table(tokenizer, mode, max_chars=12)
    assert table.shape == (tokenizer.vocab_size, 12)
    piece = tokenizer.pieces.index("▁영화") if "▁영화" in tokenizer.pieces else 10
    row = list(table[piece])
    symbols = tokenizer.pieces[piece].replace("▁", " ")  # the word-boundary mark is a space symbol
    width = {"bytes": len(symbols.encode()), "chars": len(symbols), "jamo": len(decompose_hangul(symbols))}[mode]
    assert row[0] == BEGIN_PIECE
    assert row.index(END_PIECE) == min(width, 10) + 1


def test_too_small_vocabulary_is_a_tokenizer_error(small_corpus):
    lines = small_corpus.read_text(encoding="utf-8").splitlines()
    with pytest.raises(TokenizerError, match="--vocab-size"):
        train_sentencepiece(lines, 100)


def test_boundary_piece_spells_a_word_alike_after_a_space_and_after_a_digit(small_corpus):
    """Without it, 연패 may be "▁연 패" after a space and "연 패" after a digit; with it, "▁" is always a piece of
    its own and the word's own pieces are the same in both places."""
    lines = small_corpus.read_text(encoding="utf-8").splitlines()
    tokenizer = Tokenizer(train_sentencepiece(lines, 800, boundary_piece=True))
    after_space = tokenizer.encode_with_offsets("이번 연패가").pieces
    after_digit = tokenizer.encode_with_offsets("이번 4연패가").pieces
    assert after_space[after_space.index("▁", 1) + 1:] == after_digit[after_digit.index("4") + 1:]
    for line in lines[:200]:
        pieces = tokenizer.encode_with_offsets(line).pieces
        assert all(piece == "▁" or not piece.startswith("▁") for piece in pieces)
