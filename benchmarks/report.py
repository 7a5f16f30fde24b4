"""The benchmark report: each figure printed and appended to the results file the moment it is measured.

A results file is Markdown, one `- what: figure` line per measurement under a `## part` heading, so a run that is
killed keeps what it measured. Its name carries the date and the CPU kind:
`benchmarks/results/2026-12-02-avx512-bf16-quick.md`. With a JSON-lines path, each figure is also one
JSON object there.

    >>> report = Report(Path("out.md"))
    >>> report.figure("float32 matmul 2048^3, GFLOP/s", summary([190.1, 193.2, 188.0]))
    - float32 matmul 2048^3, GFLOP/s: 190.1 (min 188.0, max 193.2, n=3)
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Optional, TextIO, Union

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Stats:
    """Median, min and max of repeated measurements."""

    median: float
    min: float
    max: float
    runs: int

    def format(self, digits: int = 0, unit: str = "") -> str:
        if self.runs == 1:
            return f"{self.median:,.{digits}f}{unit} (one run)"
        return (f"{self.median:,.{digits}f}{unit} (min {self.min:,.{digits}f}, max {self.max:,.{digits}f}, "
                f"n={self.runs})")


def summary(values: list[float]) -> Stats:
    if not values:
        raise ValueError("no measurements to summarise")
    return Stats(statistics.median(values), min(values), max(values), len(values))


def results_path(kind: str, what: str, day: Optional[str] = None, directory: Path = RESULTS) -> Path:
    """benchmarks/results/DAY-KIND-WHAT.md, with -2, -3, ... added when that name is taken (runs are kept)."""
    day = day or time.strftime("%Y-%m-%d")
    path = directory / f"{day}-{kind}-{what}.md"
    number = 2
    while path.exists():
        path = directory / f"{day}-{kind}-{what}-{number}.md"
        number += 1
    return path


def machine_load() -> str:
    """The 1, 5 and 15 minute load averages, and the processes using most CPU right now (other than this one)."""
    one, five, fifteen = os.getloadavg()
    text = f"load average {one:.2f} {five:.2f} {fifteen:.2f}"
    try:  # top's second sample is CPU use over the last half second, not since each process started
        lines = subprocess.run(["top", "-b", "-c", "-n", "2", "-d", "0.5", "-w", "200"], capture_output=True, text=True,
                               timeout=10).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return text
    last = max((i for i, line in enumerate(lines) if line.lstrip().startswith("PID")), default=None)
    if last is None:
        return text
    busy = []
    for line in lines[last + 1:]:
        fields = line.split(None, 11)
        if len(fields) == 12 and fields[0] != str(os.getpid()) and not fields[11].startswith("top "):
            cpu = float(fields[8].replace(",", "."))
            if cpu >= 5:
                busy.append(f"{fields[11][:60]} {cpu:.0f}%")
    return text + "; busy: " + (", ".join(busy[:5]) if busy else "nothing else above 5% CPU")


class Report:
    """Writes each line to stdout (flushed) and appends it to the results file (flushed) at once."""

    def __init__(self, path: Optional[Path], json_path: Optional[Path] = None, stream: Optional[TextIO] = None):
        self.path, self.json_path, self.stream = path, json_path, stream
        for target in (path, json_path):
            if target is not None:
                target.parent.mkdir(parents=True, exist_ok=True)

    def line(self, text: str = "") -> None:
        print(text, file=self.stream or sys.stdout, flush=True)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(text + "\n")

    @contextlib.contextmanager
    def part(self, title: str) -> Iterator[None]:
        """A part's heading with the machine's load as it starts; its wall time when it ends."""
        self.line(f"\n## {title}\n")
        self.line(f"- before this part: {machine_load()}")
        start = time.perf_counter()
        try:
            yield
        finally:
            self.line(f"- this part took {time.perf_counter() - start:.0f} s")

    def figure(self, what: str, value: Union[Stats, float, str], digits: int = 0, unit: str = "") -> None:
        if isinstance(value, Stats):
            text = value.format(digits, unit)
        elif isinstance(value, float):
            text = f"{value:,.{digits}f}{unit}"
        else:
            text = f"{value}{unit}"
        self.line(f"- {what}: {text}")
        if self.json_path is not None:
            record = {"what": what, **(asdict(value) if isinstance(value, Stats) else {"value": value})}
            with open(self.json_path, "a", encoding="utf-8") as out:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")

    def skipped(self, path: str, reason: str) -> None:
        self.line(f"- skipped: {path} — {reason}")

    def note(self, text: str) -> None:
        self.line(f"- {text}")
