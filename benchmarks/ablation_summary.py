"""One tab-separated line per ablation candidate, from its metrics.jsonl and scores.txt (benchmarks/ablation.sh).

    python -m benchmarks.ablation_summary RUN_DIR NAME          # the line
    python -m benchmarks.ablation_summary RUN_DIR --header      # the column names

Columns: pieces read per direction (forward/backward), pieces/s per direction (mean of the two), bits/char of
the forward and backward models on NSMC test reviews and on the ko-open held-out slice, mean 1-NN sense
accuracy over the development set's words per layer (0, 1, 2, mix), pair accuracy per layer, and the bundled
연패 1-NN per layer.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

LAYERS = ("layer 0", "layer 1", "layer 2", "mix")
COLUMNS = (["candidate", "pieces_fwd", "pieces_bwd", "pieces_per_s", "nsmc_bpc_fwd", "nsmc_bpc_bwd",
            "ko_open_bpc_fwd", "ko_open_bpc_bwd"]
           + [f"dev_1nn_{layer.replace('layer ', 'l')}" for layer in LAYERS]
           + [f"dev_pair_{layer.replace('layer ', 'l')}" for layer in LAYERS]
           + [f"yeonpae_1nn_{layer.replace('layer ', 'l')}" for layer in LAYERS])


def last_records(metrics: Path) -> dict[str, dict]:
    """The last metrics record of each direction."""
    last: dict[str, dict] = {}
    for line in metrics.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        last[record["direction"]] = record
    return last


def section(text: str, title: str) -> str:
    """The lines of scores.txt under `## title`, up to the next `##`."""
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 3)
    return text[start:end if end >= 0 else len(text)]


def bits_per_char(block: str) -> list[str]:
    return re.findall(r"([\d.]+) bits/char", block)


def mean_1nn(block: str) -> list[str]:
    means = block[block.index("mean over words:"):]
    return [re.search(rf"{layer}\s+1-NN ([\d.]+)", means).group(1) for layer in LAYERS]


def pair_accuracy(block: str) -> list[str]:
    pairs = block[block.index("pair accuracy"):]
    return [re.search(rf"{layer}\s+threshold \S+\s+fit \S+ accuracy ([\d.]+)", pairs).group(1) for layer in LAYERS]


def summary_line(run_dir: Path, name: str) -> str:
    out = run_dir / name
    records = last_records(out / "metrics.jsonl")
    scores = (out / "scores.txt").read_text(encoding="utf-8")
    speed = sum(records[d]["tokens"] / records[d]["elapsed_s"] for d in records) / len(records)
    dev = section(scores, "development homograph set")
    fields = ([name, str(records["forward"]["tokens"]), str(records["backward"]["tokens"]), f"{speed:.0f}"]
              + bits_per_char(section(scores, "NSMC test reviews")) + bits_per_char(section(scores, "ko-open held-out"))
              + mean_1nn(dev) + pair_accuracy(dev) + mean_1nn(section(scores, "bundled")))
    return "\t".join(fields)


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        sys.exit(__doc__)
    run_dir, name = Path(argv[0]), argv[1]
    print("\t".join(COLUMNS) if name == "--header" else summary_line(run_dir, name))


if __name__ == "__main__":
    main(sys.argv[1:])
