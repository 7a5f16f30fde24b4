"""Reading text corpora: checks, line reading (.txt and .txt.gz), and several sources streamed interleaved.

A corpus is one or more text files, one text per line. `resolve_corpus` turns what a user typed (files, globs,
directories) into a sorted list of files; `parse_mix` reads per-source weights. `MixedReader` streams the
sources interleaved, one pool of lines at a time, and its position (each source's byte offset, passes and
credit) is enough to rebuild the same pool after a restart.

Weights count passes per epoch: with weight w a source is read w times for every pass over a weight-1 source
of any size, so at the default weight 1 every source ends together and one epoch is one pass over everything.
Each pool gives source i a byte budget proportional to w_i x size_i; a source reads whole lines while its
credit is positive and carries any overshoot to the next pool, and wraps to its start at its end.
"""

from __future__ import annotations

import glob
import gzip
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Mapping, Optional, Sequence

from .errors import CorpusError
from .tokenization import normalize_line

log = logging.getLogger(__name__)

LONG_LINE_CHARS = 20_000  # longer lines are cut into pieces of about this size before tokenization
TEXT_SUFFIXES = (".txt", ".txt.gz")


# ---------------------------------------------------------------------------------------------
# one file


def check_text_file(path: Path, what: str = "corpus") -> Path:
    """Refuse a path that is missing, a directory or unreadable, with a one-line reason."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{what} {path} does not exist")
    if path.is_dir():
        raise CorpusError(f"{what} {path} is a directory; give a text file (.txt or .txt.gz)")
    if not os.access(path, os.R_OK):
        raise CorpusError(f"{what} {path} is not readable")
    return path


def _open_binary(path: Path) -> BinaryIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


@dataclass
class ReadStats:
    """What the reader fixed or skipped, reported in the log."""

    lines: int = 0
    blank: int = 0
    invalid_utf8: int = 0
    nul: int = 0


def read_lines(path: Path, start_offset: int = 0, stats: Optional[ReadStats] = None,
               keep_blank: bool = False) -> Iterator[tuple[int, str]]:
    """Yield (byte offset after the line, text) for every non-blank line (every line with keep_blank).

    Offsets count uncompressed bytes (a .gz file is seeked by decompressing up to the offset).
    CRLF and a BOM are removed; invalid UTF-8 is replaced by U+FFFD and counted; NUL bytes are dropped and
    counted; text is NFC-normalised (decomposed Hangul jamo compose).
    """
    stats = stats if stats is not None else ReadStats()
    try:
        with _open_binary(path) as handle:
            if start_offset:
                handle.seek(start_offset)
            offset = start_offset
            for raw in handle:
                offset += len(raw)
                text = _decode_line(raw, stats)
                if text.strip() or keep_blank:
                    yield offset, text
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise CorpusError(f"cannot read {path}: {error}") from None


def read_stream_lines(stream: BinaryIO, stats: Optional[ReadStats] = None) -> Iterator[str]:
    """Every line of a byte stream (standard input), blank ones included, cleaned as read_lines cleans a file's."""
    stats = stats if stats is not None else ReadStats()
    for raw in stream:
        yield _decode_line(raw, stats)


def _decode_line(raw: bytes, stats: ReadStats) -> str:
    """One line's bytes -> its NFC text without line end, BOM or NUL; counted in stats."""
    stats.lines += 1
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        stats.invalid_utf8 += 1
    if "\x00" in text:
        stats.nul += 1
    text = normalize_line(text)
    if not text.strip():
        stats.blank += 1
    return text


def iter_text(path: Path, stats: Optional[ReadStats] = None) -> Iterator[str]:
    """Every non-blank line of a text file, long lines cut at spaces into parts of about LONG_LINE_CHARS."""
    for _, text in read_lines(path, stats=stats):
        yield from split_long_line(text)


def split_long_line(text: str, limit: int = LONG_LINE_CHARS) -> list[str]:
    """Cut `text` at spaces into parts of at most about `limit` characters (hard cuts where no space is near)."""
    if len(text) <= limit:
        return [text]
    parts, start = [], 0
    while start < len(text):
        end = min(len(text), start + limit)
        if end < len(text):
            space = text.rfind(" ", start + limit // 2, end)
            end = space + 1 if space > 0 else end
        parts.append(text[start:end])
        start = end
    return parts


def log_read_stats(path, stats: ReadStats) -> None:
    if stats.invalid_utf8:
        log.warning("%s: %d lines had invalid UTF-8, replaced with U+FFFD", path, stats.invalid_utf8)
    if stats.nul:
        log.warning("%s: %d lines had NUL bytes, removed", path, stats.nul)


def corpus_size(path: Path) -> int:
    """Uncompressed size in bytes (one streaming pass for .gz)."""
    path = check_text_file(path)
    if path.suffix != ".gz":
        return path.stat().st_size
    total = 0
    with gzip.open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            total += len(chunk)
    return total


# ---------------------------------------------------------------------------------------------
# several files: what the user named, and their weights


def _is_text_file(path: Path) -> bool:
    return path.is_file() and path.name.endswith(TEXT_SUFFIXES)


def resolve_corpus(specs: Sequence[str | Path]) -> list[Path]:
    """The text files named by `specs`: files, globs (`data/*.txt.gz`) and directories (their .txt and .txt.gz
    files, not recursive). Each file once, in the order given (a glob's or directory's files sorted by name)."""
    if not specs:
        raise CorpusError("no corpus given: name one or more text files, globs or directories")
    files: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if _is_text_file(p))
            if not found:
                raise CorpusError(f"corpus directory {path} holds no .txt or .txt.gz files")
        elif glob.has_magic(str(spec)) and not path.exists():
            found = sorted(Path(p) for p in glob.glob(str(spec)) if Path(p).is_file())
            if not found:
                raise CorpusError(f"corpus pattern {spec} matches no files")
        else:
            found = [check_text_file(path)]
        files.extend(p for p in found if p not in files)
    return files


def source_name(path: Path) -> str:
    """How a source is named in --mix and in logs: the file name without .txt/.txt.gz (`wiki.txt.gz` -> `wiki`)."""
    name = Path(path).name
    for suffix in (".txt.gz", ".gz", ".txt"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def parse_mix(mix: Optional[str], files: Sequence[Path]) -> list[float]:
    """Per-file weights from `--mix`: `nsmc=2,wiki=0.5` or the path of a file of `NAME WEIGHT` lines
    (tab or spaces; `#` starts a comment). NAME is a source name (see source_name), a file name or a path.
    Sources not named keep weight 1; a name matching no source is an error."""
    weights = [1.0] * len(files)
    if not mix:
        return weights
    if "=" not in mix and Path(mix).is_file():
        lines = Path(mix).read_text(encoding="utf-8").splitlines()
        pairs = [line.split("#", 1)[0].split() for line in lines]
        entries = [(p[0], p[1] if len(p) > 1 else "") for p in pairs if p]
        if any(len(p) != 2 for p in pairs if p):
            raise CorpusError(f"--mix file {mix}: every line must be NAME WEIGHT")
    else:
        entries = []
        for item in mix.split(","):
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                raise CorpusError(f"--mix {mix!r}: give NAME=WEIGHT pairs separated by commas, or a weights file")
            entries.append((name.strip(), value.strip()))
    for name, value in entries:
        try:
            weight = float(value)
        except ValueError:
            raise CorpusError(f"--mix: weight of {name!r} must be a number, got {value!r}") from None
        if not weight > 0 or weight == float("inf"):
            raise CorpusError(f"--mix: weight of {name!r} must be a positive number, got {value!r}")
        matches = [i for i, f in enumerate(files) if name in (source_name(f), f.name, str(f))]
        if not matches:
            known = ", ".join(source_name(f) for f in files)
            raise CorpusError(f"--mix: {name!r} names no corpus file (the sources are: {known})")
        for index in matches:
            weights[index] = weight
    return weights


# ---------------------------------------------------------------------------------------------
# the interleaved stream


@dataclass(frozen=True)
class SourcePosition:
    """One source's reader state: bytes read in the current pass, passes completed, unspent byte credit."""

    offset: int = 0
    passes: int = 0
    credit: float = 0.0


@dataclass(frozen=True)
class MixPosition:
    """Where a mixed stream is: each source's state at the start of pool number `pool`."""

    pool: int = 0
    sources: tuple[SourcePosition, ...] = ()

    def to_dict(self) -> dict:
        return {"pool": self.pool, "sources": [asdict(s) for s in self.sources]}

    @classmethod
    def from_dict(cls, values: Mapping) -> "MixPosition":
        return cls(pool=int(values.get("pool", 0)),
                   sources=tuple(SourcePosition(**s) for s in values.get("sources", ())))


@dataclass(frozen=True)
class CorpusSource:
    path: Path
    weight: float = 1.0
    size: int = 0  # uncompressed bytes


class _SourceReader:
    """One file's lines from an offset on, wrapping to the start at the end (counting passes)."""

    def __init__(self, source: CorpusSource, state: SourcePosition, stats: ReadStats):
        self.source, self.stats = source, stats
        self.offset, self.passes, self.credit = state.offset, state.passes, state.credit
        self._lines: Optional[Iterator[tuple[int, str]]] = None

    def state(self) -> SourcePosition:
        return SourcePosition(self.offset, self.passes, self.credit)

    def next_line(self) -> str:
        """The next non-blank line; its bytes (blank lines before it included) are taken from the credit."""
        wrapped_empty = False
        while True:
            if self._lines is None:
                self._lines = read_lines(self.source.path, self.offset, self.stats)
            item = next(self._lines, None)
            if item is not None:
                end_offset, text = item
                self.credit -= end_offset - self.offset
                self.offset = end_offset
                return text
            # end of file: wrap to its start
            if self.offset == 0 or wrapped_empty:
                raise CorpusError(f"{self.source.path} holds no text to train on (empty, or only blank lines)")
            self.credit -= max(0, self.source.size - self.offset)  # trailing blank lines
            self._lines, self.offset, self.passes = None, 0, self.passes + 1
            wrapped_empty = True


class MixedReader:
    """Pools of lines drawn from every source by weight, and the position to rebuild any pool.

    pool_bytes: uncompressed bytes per pool over all sources. Iterating from `start` yields
    (pool number, position at the pool's start, lines of the pool).
    """

    def __init__(self, sources: Sequence[CorpusSource], pool_bytes: int, stats: Optional[ReadStats] = None):
        if not sources:
            raise CorpusError("no corpus files to read")
        self.sources = list(sources)
        self.pool_bytes = pool_bytes
        self.stats = stats if stats is not None else ReadStats()
        weighted = [s.weight * max(s.size, 1) for s in self.sources]
        total = sum(weighted)
        self.budgets = [pool_bytes * w / total for w in weighted]  # each source's bytes per pool

    @classmethod
    def from_files(cls, files: Sequence[Path], weights: Optional[Sequence[float]] = None, *, pool_bytes: int,
                   sizes: Optional[Sequence[int]] = None) -> "MixedReader":
        weights = list(weights) if weights is not None else [1.0] * len(files)
        sizes = list(sizes) if sizes is not None else [corpus_size(f) for f in files]
        sources = [CorpusSource(Path(f), w, s) for f, w, s in zip(files, weights, sizes)]
        for source in sources:
            if source.size == 0:
                raise CorpusError(f"{source.path} holds no text to train on (empty, or only blank lines)")
        return cls(sources, pool_bytes)

    def start_position(self) -> MixPosition:
        return MixPosition(0, tuple(SourcePosition() for _ in self.sources))

    def pools(self, start: Optional[MixPosition] = None) -> Iterator[tuple[int, MixPosition, list[str]]]:
        start = start if start is not None and start.sources else self.start_position()
        if len(start.sources) != len(self.sources):
            raise CorpusError(f"the reader position holds {len(start.sources)} sources but the corpus has "
                              f"{len(self.sources)}; resume with the same corpus files")
        readers = [_SourceReader(source, state, self.stats) for source, state in zip(self.sources, start.sources)]
        pool = start.pool
        while True:
            position = MixPosition(pool, tuple(reader.state() for reader in readers))
            lines: list[str] = []
            for reader, budget in zip(readers, self.budgets):
                reader.credit += budget
                while reader.credit > 0:
                    lines.append(reader.next_line())
            yield pool, position, lines
            pool += 1

    def epochs_done(self, position: MixPosition) -> float:
        """Epochs read by `position`: bytes read over all sources / bytes of one epoch (sum of weight x size)."""
        read = sum(state.passes * source.size + state.offset for source, state in zip(self.sources, position.sources))
        return read / max(sum(source.weight * source.size for source in self.sources), 1.0)

    def describe(self) -> str:
        total = sum(s.weight * s.size for s in self.sources)
        return "; ".join(f"{source_name(s.path)} {s.size / 1e6:.1f} MB x {s.weight:g} = "
                         f"{100 * s.weight * s.size / total:.1f}%" for s in self.sources)


def mixture_text(reader: MixedReader, max_bytes: Optional[int] = None) -> Iterator[str]:
    """One epoch of the mixture (or `max_bytes` of it), line parts as iter_text gives them: the text a tokenizer
    is trained on, so that it samples every source by its weight. Read in pools of a thousandth of that, so the
    epoch ends within 0.1% whatever the training pool size."""
    epoch_bytes = sum(s.weight * s.size for s in reader.sources)
    limit = min(epoch_bytes, max_bytes) if max_bytes else epoch_bytes
    fine = MixedReader(reader.sources, pool_bytes=max(1, min(reader.pool_bytes, int(limit) // 1000)),
                       stats=reader.stats)
    for _, position, lines in fine.pools():
        if sum(st.passes * so.size + st.offset for so, st in zip(fine.sources, position.sources)) >= limit:
            return
        for line in lines:
            yield from split_long_line(line)
