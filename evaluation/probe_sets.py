"""Probe sets: TSV files of homograph occurrences, with header `word, sense, gloss, text, start, end`.

`start`/`end` are character offsets of the word in `text` (text[start:end] == word). The project bundles a
Korean set (12+ homographs: 연패, 연기, 배, 눈, 말, 차, 다리, 밤, 사과, ...) and a smaller English one.
"""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path
from typing import NamedTuple, Optional

from contextemb.errors import DataFormatError

PROBE_COLUMNS = ("word", "sense", "gloss", "text", "start", "end")


class Probe(NamedTuple):
    word: str
    sense: str
    gloss: str
    text: str
    start: int
    end: int


def bundled_probe_file(language: str = "ko") -> Path:
    path = Path(str(resources.files("contextemb") / "resources" / "probes" / f"{language}.tsv"))
    if not path.is_file():
        raise DataFormatError(f"no bundled probe set for language {language!r}")
    return path


def read_tsv(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) for every row of a UTF-8 TSV file with a header holding `required` columns."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path} does not exist or is not a file")
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [column for column in required if column not in (reader.fieldnames or [])]
        if missing:
            raise DataFormatError(f"{path}: missing column(s) {', '.join(missing)}; the header needs "
                                  f"{', '.join(required)} (tab-separated)")
        rows = []
        for row in reader:
            if any(row.get(column) is None for column in required):
                raise DataFormatError(f"{path}, line {reader.line_num}: too few fields")
            rows.append((reader.line_num, row))
    return rows


def parse_offsets(path: Path, line: int, text: str, word: str, start: str, end: str) -> tuple[int, int]:
    try:
        start_index, end_index = int(start), int(end)
    except ValueError:
        raise DataFormatError(f"{path}, line {line}: offsets {start!r}, {end!r} are not integers") from None
    if text[start_index:end_index] != word or not 0 <= start_index < end_index <= len(text):
        raise DataFormatError(f"{path}, line {line}: text[{start_index}:{end_index}] is "
                              f"{text[start_index:end_index]!r}, not the word {word!r}")
    return start_index, end_index


def read_probes(path: Path, word: Optional[str] = None) -> list[Probe]:
    """Probes of a TSV file (all words, or one); DataFormatError on missing columns, offsets that do not
    match the word, or duplicate rows."""
    probes, seen = [], {}
    for line, row in read_tsv(path, PROBE_COLUMNS):
        start, end = parse_offsets(path, line, row["text"], row["word"], row["start"], row["end"])
        probe = Probe(row["word"], row["sense"], row["gloss"], row["text"], start, end)
        key = (probe.word, probe.text, probe.start)
        if key in seen:
            raise DataFormatError(f"{path}, line {line}: duplicate of line {seen[key]}")
        seen[key] = line
        if word is None or probe.word == word:
            probes.append(probe)
    if not probes:
        raise DataFormatError(f"{path} has no probes" + (f" for {word!r}" if word else ""))
    return probes
