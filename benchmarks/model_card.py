"""The model card of a campaign run, from its metrics and the scores of benchmarks/package_model.sh.

    python -m benchmarks.model_card RUN_DIR --command "the command that trained it" > card.json
    contextemb export RUN_DIR/final contextemb/models/ko-general --card card.json

The card starts from --base (by default the packaged ko-general's card: its name, data, licences and
configuration text), and replaces what this run measured: the budget, the machine, the held-out scores, the
development homograph set and the bundled 연패 probe. A run started with --init from the base model adds its
budget to the base's, so that "pieces" is what the weights have read in all.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from contextemb.config import read_config
from contextemb.packaged import packaged_models_dir

DIRECTIONS = ("forward", "backward")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_budget(metrics: Iterable[dict]) -> dict[str, dict]:
    """Per direction, the last training record's step, pieces and seconds (records of a resumed run continue
    the counts, so the largest step is the end)."""
    last: dict[str, dict] = {}
    for record in metrics:
        if "tokens" not in record or "loss" not in record:
            continue  # held-out score records repeat the step
        direction = record["direction"]
        if direction not in last or record["step"] >= last[direction]["step"]:
            last[direction] = record
    missing = [d for d in DIRECTIONS if d not in last]
    if missing:
        raise ValueError(f"no training record for {', '.join(missing)} in the metrics")
    return {d: {"steps": last[d]["step"], "pieces": last[d]["tokens"], "seconds": last[d]["elapsed_s"]}
            for d in DIRECTIONS}


def add_budgets(base: dict[str, dict], run: dict[str, dict]) -> dict[str, dict]:
    """The weights' whole budget: the base model's, then this run's on top (kept apart as well)."""
    return {d: {"steps": base[d]["steps"] + run[d]["steps"], "pieces": base[d]["pieces"] + run[d]["pieces"],
                "seconds": round(base[d]["seconds"] + run[d]["seconds"], 2),
                "before_this_run": base[d], "this_run": run[d]} for d in DIRECTIONS}


def probe_summary(rows: Iterable[dict]) -> dict[str, dict]:
    """`contextemb probe --json` lines -> per representation, the mean over words of 1-NN accuracy, chance and
    the within-minus-cross cosine gap, plus the pair accuracy where the dev set gives one."""
    table: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    pairs: dict[str, float] = {}
    for row in rows:
        if row.get("task") == "pairs":
            pairs[row["representation"]] = row["test_accuracy"]
            continue
        columns = table[row["representation"]]
        columns["1nn"].append(row["accuracy"])
        columns["chance"].append(row["chance"])
        columns["within_minus_cross"].append(row["gap"])
    summary = {}
    for representation, columns in table.items():
        summary[representation] = {key: round(float(np.mean(values)), 3) for key, values in columns.items()}
        if representation in pairs:
            summary[representation]["pair_accuracy"] = round(pairs[representation], 3)
    return summary


def build_card(run_dir: Path, base: dict, command: Optional[str], machine: str) -> dict:
    config = read_config(run_dir / "model" / "config.json")
    budget = run_budget(read_jsonl(run_dir / "model" / "metrics.jsonl"))
    if config.train.init_from is not None:
        budget = add_budgets(base["budget"], budget)
    scores = run_dir / "scores"
    card = dict(base)
    card.update({
        "budget": budget,
        "machine": machine,
        "held_out_scores": {
            "nsmc_test_reviews_all_50000": read_jsonl(scores / "nsmc-test.jsonl"),
            "ko_open_heldout_slice_first_2000_lines": read_jsonl(scores / "ko-open-heldout.jsonl"),
        },
        "development_homograph_set": probe_summary(read_jsonl(scores / "dev-set.jsonl")),
        "bundled_yeonpae_probe": probe_summary(read_jsonl(scores / "yeonpae.jsonl")),
    })
    if command is not None:
        card["command"] = command
    return card


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--base", type=Path, default=packaged_models_dir() / "ko-general" / "model_card.json",
                        help="the card to start from (default: the packaged ko-general's)")
    parser.add_argument("--command", help="the command that trained the run (replaces the base card's)")
    parser.add_argument("--machine", default=f"{platform.processor() or platform.machine()}, no GPU",
                        help="where it was trained, in words")
    args = parser.parse_args(argv)
    base = json.loads(args.base.read_text(encoding="utf-8"))
    json.dump(build_card(args.run_dir, base, args.command, args.machine), sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
