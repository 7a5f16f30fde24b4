"""The development homograph set: hand-labelled occurrences in the shared corpora, stored as references.

The repository holds no corpus text. `contextemb/resources/probes/ko-dev-refs.tsv` holds, per occurrence,
`word, sense, gloss, source, line, start, end, line_sha1`:

- `source`: a file under the data root (`ko-open/wiki.txt.gz`, `nsmc/corpus.txt`); `.gz` is read compressed;
- `line`: 0-based line number in that file (lines split on b"\\n" only, then decoded as UTF-8);
- `start`, `end`: character offsets of the word in that whole line (line[start:end] == word);
- `line_sha1`: the first 12 hex digits of sha1(line bytes), so an edited source is noticed, not misread.

The data root is `$CONTEXTEMB_DATA`, else `../shared/data` beside this checkout. Each occurrence becomes a
`Probe` whose text is a window of its line: the sentence holding the word (cut after `.`, `!` or `?` followed
by a space), narrowed to at most `MAX_WINDOW_CHARS` characters around the word at spaces; the offsets are
moved into the window. How the set was drawn and labelled: docs/DEV_HOMOGRAPHS.md.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from collections import defaultdict
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import NamedTuple, Optional

from contextemb.errors import DataFormatError

from .probe_sets import Probe, read_tsv

REFERENCE_COLUMNS = ("word", "sense", "gloss", "source", "line", "start", "end", "line_sha1")
DATA_ENV = "CONTEXTEMB_DATA"
DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"
MAX_WINDOW_CHARS = 400
HASH_DIGITS = 12

_SENTENCE_BREAK = re.compile(r"[.!?]\s+")  # a break ends where the next sentence starts
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


class Reference(NamedTuple):
    word: str
    sense: str
    gloss: str
    source: str  # relative to the data root, "/"-separated
    line: int  # 0-based
    start: int  # characters into the line
    end: int
    line_sha1: str


def dev_reference_file() -> Path:
    return Path(str(resources.files("contextemb") / "resources" / "probes" / "ko-dev-refs.tsv"))


def data_root(root: Optional[Path] = None) -> Path:
    """`root`, else $CONTEXTEMB_DATA, else ../shared/data beside the checkout; DataFormatError if absent."""
    chosen = Path(root) if root is not None else Path(os.environ.get(DATA_ENV) or DEFAULT_DATA_ROOT)
    if not chosen.is_dir():
        raise DataFormatError(f"data root {chosen} does not exist: the development set reads its text from the "
                              f"shared corpora; point ${DATA_ENV} at the folder holding ko-open/ and nsmc/")
    return chosen


def line_hash(raw: bytes) -> str:
    return hashlib.sha1(raw).hexdigest()[:HASH_DIGITS]


def read_references(path: Path) -> list[Reference]:
    """References of a TSV file; DataFormatError on missing columns, bad numbers or paths, or duplicates."""
    references, seen = [], {}
    for row_line, row in read_tsv(path, REFERENCE_COLUMNS):
        where = f"{path}, line {row_line}"
        try:
            line, start, end = int(row["line"]), int(row["start"]), int(row["end"])
        except ValueError:
            raise DataFormatError(f"{where}: line, start and end must be integers") from None
        if line < 0 or not 0 <= start < end or end - start != len(row["word"]):
            raise DataFormatError(f"{where}: line {line}, span [{start}, {end}) cannot hold the word {row['word']!r}")
        source = PurePosixPath(row["source"])
        if source.is_absolute() or ".." in source.parts or not source.parts:
            raise DataFormatError(f"{where}: source {row['source']!r} must be a path inside the data root")
        reference = Reference(row["word"], row["sense"], row["gloss"], str(source), line, start, end, row["line_sha1"])
        key = (reference.word, reference.source, line, start)
        if key in seen:
            raise DataFormatError(f"{where}: duplicate of line {seen[key]}")
        seen[key] = row_line
        references.append(reference)
    if not references:
        raise DataFormatError(f"{path} holds no references")
    return references


def read_lines(path: Path, numbers: set[int]) -> dict[int, bytes]:
    """The raw bytes (no newline) of the wanted 0-based lines of a text file, gzip if it ends in .gz."""
    if not path.is_file():
        raise DataFormatError(f"{path} does not exist: the development set needs this shared source file")
    opener = gzip.open if path.suffix == ".gz" else open
    found, last = {}, max(numbers)
    with opener(path, "rb") as handle:
        for number, raw in enumerate(handle):
            if number in numbers:
                found[number] = raw.rstrip(b"\n")
            if number >= last:
                break
    return found


def sentence_window(text: str, start: int, end: int, max_chars: int = MAX_WINDOW_CHARS) -> tuple[int, int]:
    """(window_start, window_end) in `text`: the sentence holding text[start:end], then at most `max_chars`
    characters centred on the word, cut at spaces so no word is split (where a space is there to cut at)."""
    left = max((m.end() for m in _SENTENCE_BREAK.finditer(text, 0, start)), default=0)
    closing = _SENTENCE_END.search(text, end)
    right = closing.end() if closing else len(text)
    if right - left <= max_chars:
        return left, right
    half = max(0, (max_chars - (end - start)) // 2)
    low, high = max(left, start - half), min(right, end + half)
    if low > left and not text[low - 1].isspace():  # low is inside a word: start after its next space
        space = text.find(" ", low, start)
        low = space + 1 if space >= 0 else low
    if high < right and not text[high].isspace():  # high is inside a word: end at its last space
        space = text.rfind(" ", end, high)
        high = space if space >= 0 else high
    return low, high


def resolve(reference: Reference, raw: Optional[bytes], path: Path) -> Probe:
    """The Probe of one reference, given its line's bytes (None when the file is shorter)."""
    where = f"{path}, line {reference.line} (0-based), word {reference.word!r}"
    if raw is None:
        raise DataFormatError(f"{where}: the file has no such line")
    if line_hash(raw) != reference.line_sha1:
        raise DataFormatError(f"{where}: the line's sha1 {line_hash(raw)} is not {reference.line_sha1}; "
                              "the source file changed")
    text = raw.decode("utf-8")
    if text[reference.start:reference.end] != reference.word:
        raise DataFormatError(f"{where}: text[{reference.start}:{reference.end}] is "
                              f"{text[reference.start:reference.end]!r}, not the word")
    low, high = sentence_window(text, reference.start, reference.end)
    return Probe(reference.word, reference.sense, reference.gloss, text[low:high],
                 reference.start - low, reference.end - low)


def load_dev_probes(root: Optional[Path] = None, references_path: Optional[Path] = None,
                    word: Optional[str] = None) -> list[Probe]:
    """Probes of the development set (all words, or one), their text read from the data root.

    DataFormatError when the data root or a source file is missing, or a reference does not match its line.
    """
    path = Path(references_path) if references_path is not None else dev_reference_file()
    references = [r for r in read_references(path) if word is None or r.word == word]
    if not references:
        raise DataFormatError(f"{path} has no references for {word!r}")
    root = data_root(root)
    by_source: dict[str, list[Reference]] = defaultdict(list)
    for reference in references:
        by_source[reference.source].append(reference)
    resolved = {}
    for source, group in by_source.items():
        source_path = root / source
        lines = read_lines(source_path, {r.line for r in group})
        for reference in group:
            resolved[reference] = resolve(reference, lines.get(reference.line), source_path)
    return [resolved[r] for r in references]
