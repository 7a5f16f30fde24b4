"""The campaign's model card is built from what the real commands print (benchmarks/model_card.py)."""

from __future__ import annotations

import json

import pytest

from benchmarks.model_card import add_budgets, build_card, probe_summary, run_budget


def _write_lines(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_the_card_reads_the_budget_and_the_scores_that_the_commands_print(tmp_path, tiny_model_dir, demo_heldout,
                                                                         run_cli):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model").symlink_to(tiny_model_dir)
    scores = run_dir / "scores"
    scores.mkdir()
    perplexity = run_cli("-q", "perplexity", tiny_model_dir, demo_heldout, "--json")
    probe = run_cli("-q", "probe", tiny_model_dir, "--word", "연패", "--json", "--bootstrap", "20")
    assert perplexity.exit_code == 0 and probe.exit_code == 0
    for name in ("nsmc-test.jsonl", "ko-open-heldout.jsonl"):
        _write_lines(scores / name, perplexity.stdout)
    for name in ("dev-set.jsonl", "yeonpae.jsonl"):  # the dev set needs ../shared; its lines have the same form
        _write_lines(scores / name, probe.stdout)
    base = {"name": "tiny", "trained_on": {"demo": "the bundled demo corpus"}, "budget": {}}

    card = build_card(run_dir, base, "contextemb pretrain demo", "a test machine")

    assert card["name"] == "tiny" and card["trained_on"] == base["trained_on"]
    assert card["command"] == "contextemb pretrain demo" and card["machine"] == "a test machine"
    assert {d: card["budget"][d]["steps"] for d in ("forward", "backward")} == {"forward": 250, "backward": 250}
    assert card["budget"]["forward"]["pieces"] > 250
    held_out = card["held_out_scores"]["nsmc_test_reviews_all_50000"]
    assert [row["direction"] for row in held_out] == ["forward", "backward"] and held_out[0]["bits_per_char"] > 0
    yeonpae = card["bundled_yeonpae_probe"]
    assert set(yeonpae) == {"layer 0", "layer 1", "layer 2", "mix"}
    rows = [json.loads(line) for line in probe.stdout.splitlines()]
    assert yeonpae["layer 2"]["1nn"] == round(next(r["accuracy"] for r in rows if r["representation"] == "layer 2"), 3)
    assert 0 < yeonpae["mix"]["chance"] < 1


def test_one_probe_run_prints_the_table_and_writes_the_json_lines(tmp_path, tiny_model_dir, run_cli):
    """benchmarks/package_model.sh runs each probe once: the table on stdout, the JSON lines through --json-out."""
    as_json = run_cli("-q", "probe", tiny_model_dir, "--word", "연패", "--json", "--bootstrap", "20")
    both = run_cli("-q", "probe", tiny_model_dir, "--word", "연패", "--bootstrap", "20", "--json-out",
                   tmp_path / "scores" / "yeonpae.jsonl")
    assert as_json.exit_code == 0 and both.exit_code == 0
    assert "mean over words:" in both.stdout and "1-NN acc" in both.stdout
    assert (tmp_path / "scores" / "yeonpae.jsonl").read_text(encoding="utf-8") == as_json.stdout
    assert not list((tmp_path / "scores").glob("*.tmp"))


def test_a_run_started_from_a_model_adds_its_budget_to_the_models():
    base = {"forward": {"steps": 29000, "pieces": 56_880_074, "seconds": 10646.1},
            "backward": {"steps": 29000, "pieces": 56_879_998, "seconds": 10661.32}}
    run = {"forward": {"steps": 100, "pieces": 195_839, "seconds": 45.44},
           "backward": {"steps": 100, "pieces": 195_229, "seconds": 44.98}}
    total = add_budgets(base, run)
    assert total["forward"]["pieces"] == 57_075_913 and total["backward"]["steps"] == 29100
    assert total["forward"]["before_this_run"] == base["forward"] and total["backward"]["this_run"] == run["backward"]


def test_the_budget_is_the_last_training_record_and_needs_both_directions():
    records = [
        {"direction": "forward", "step": 100, "tokens": 1000, "elapsed_s": 5.0, "loss": 4.0},
        {"direction": "forward", "step": 200, "tokens": 2000, "elapsed_s": 10.0, "loss": 3.9},
        {"direction": "forward", "step": 200, "tokens": 2000, "elapsed_s": 12.0, "valid_bpc": 4.1},  # a score
        {"direction": "backward", "step": 200, "tokens": 1990, "elapsed_s": 11.0, "loss": 3.8},
    ]
    assert run_budget(records)["forward"] == {"steps": 200, "pieces": 2000, "seconds": 10.0}
    with pytest.raises(ValueError, match="backward"):
        run_budget(records[:3])


def test_probe_summary_averages_over_words_and_joins_the_pair_accuracy():
    rows = [
        {"word": "배", "representation": "layer 2", "accuracy": 0.9, "chance": 0.4, "gap": 0.10},
        {"word": "눈", "representation": "layer 2", "accuracy": 0.7, "chance": 0.5, "gap": 0.05},
        {"task": "pairs", "representation": "layer 2", "threshold": 0.5, "train_accuracy": 0.7, "test_accuracy": 0.6123},
    ]
    assert probe_summary(rows) == {"layer 2": {"1nn": 0.8, "chance": 0.45, "within_minus_cross": 0.075,
                                               "pair_accuracy": 0.612}}
