"""--init (a new run from a model's weights and tokenizer), --precision auto, and the held-out split."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from contextemb import cpu_features as features_module
from contextemb.config import ModelConfig, read_config
from contextemb.cpu_features import CpuFeatures, choose_precision
from contextemb.errors import ConfigError
from contextemb.io import load_tensors, weights_path
from contextemb.pretrain.holdout import is_heldout, split_heldout
from contextemb.pretrain.train import pretrain

from conftest import tiny_config


def _steps(config: ModelConfig, steps: int, **train) -> ModelConfig:
    return ModelConfig(lm=config.lm, train=dataclasses.replace(config.train, max_steps=steps, **train))


def test_init_starts_from_the_models_weights_and_tokenizer(tiny_model_dir, small_corpus, tmp_path):
    out = tmp_path / "adapted"
    # one step at a negligible learning rate: the weights must still be the init model's, not a fresh init
    pretrain(small_corpus, out, _steps(tiny_config(), 1, lr=1e-9, warmup_steps=0), init=tiny_model_dir,
             parallel=False, threads=1, progress=False)
    assert (out / "tokenizer.model").read_bytes() == (tiny_model_dir / "tokenizer.model").read_bytes()
    assert read_config(out / "config.json").train.init_from == str(tiny_model_dir)
    for direction in ("forward", "backward"):
        start, _ = load_tensors(weights_path(tiny_model_dir, direction))
        after, _ = load_tensors(weights_path(out, direction))
        assert start.keys() == after.keys()
        worst = max(float((start[k].float() - after[k].float()).abs().max()) for k in start)
        assert worst < 1e-6, worst


def test_init_refuses_another_architecture(tiny_model_dir, small_corpus, tmp_path, run_cli):
    result = run_cli("pretrain", small_corpus, "--out", tmp_path / "m", "--init", tiny_model_dir, "--hidden", "999",
                     "--max-steps", "1")
    assert result.exit_code == 2
    assert "hidden 999 does not match the model's 96" in result.stderr
    with pytest.raises(ConfigError, match="does not match"):
        pretrain(small_corpus, tmp_path / "m2", tiny_config(hidden=64), init=tiny_model_dir, progress=False)
    assert not (tmp_path / "m2" / "config.json").exists()


def test_boundary_piece_is_recorded_and_refused_where_no_tokenizer_is_trained(tiny_model_dir, small_corpus, tmp_path,
                                                                              run_cli):
    out = tmp_path / "sep"
    pretrain(small_corpus, out, _steps(tiny_config(boundary_piece=True), 1), parallel=False, threads=1,
             progress=False)
    assert read_config(out / "config.json").lm.boundary_piece
    from contextemb.tokenization import Tokenizer
    pieces = Tokenizer.from_file(out / "tokenizer.model").encode_with_offsets("이번 연패가").pieces
    assert pieces[0] == "▁" and all(piece == "▁" or not piece.startswith("▁") for piece in pieces)
    for extra in (["--tokenizer", tiny_model_dir / "tokenizer.model"], ["--init", tiny_model_dir]):
        result = run_cli("pretrain", small_corpus, "--out", tmp_path / "m", "--boundary-piece", *extra,
                         "--max-steps", "1")
        assert result.exit_code == 2, result.output
        assert "boundary" in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "m" / "config.json").exists()


def test_init_and_resume_exclude_each_other(tiny_model_dir, small_corpus, tmp_path, run_cli):
    result = run_cli("pretrain", small_corpus, "--out", tmp_path / "m", "--init", tiny_model_dir, "--resume")
    assert result.exit_code == 2
    assert "give one of them" in result.stderr
    result = run_cli("pretrain", small_corpus, "--out", tmp_path / "m", "--init", "no-such-model")
    assert result.exit_code == 2
    assert "neither a model directory nor a packaged model" in result.stderr


def test_tokenizer_option_reuses_another_runs_pieces(tiny_model_dir, small_corpus, tmp_path, run_cli):
    given = tiny_model_dir / "tokenizer.model"
    out = tmp_path / "shared-pieces"
    # --vocab-size differs from the given tokenizer's: the tokenizer's own vocabulary must win
    pretrain(small_corpus, out, _steps(tiny_config(vocab_size=4000), 1), tokenizer=given, parallel=False, threads=1,
             progress=False)
    assert (out / "tokenizer.model").read_bytes() == given.read_bytes()
    saved, reference = read_config(out / "config.json"), read_config(tiny_model_dir / "config.json")
    assert saved.train.tokenizer_from == str(given)
    assert saved.lm.pieces == reference.lm.pieces
    not_a_model = tmp_path / "bad.model"
    not_a_model.write_bytes(b"not sentencepiece")
    result = run_cli("pretrain", small_corpus, "--out", tmp_path / "m", "--tokenizer", not_a_model, "--max-steps", "1")
    assert result.exit_code == 2
    assert "is not a sentencepiece model" in result.stderr
    assert not (tmp_path / "m" / "config.json").exists()
    result = run_cli("pretrain", small_corpus, "--out", tmp_path / "m", "--tokenizer", given, "--init", tiny_model_dir)
    assert result.exit_code == 2
    assert "--init and --resume bring their own" in result.stderr


def _features(**present) -> CpuFeatures:
    base = dict(model_name="test CPU", torch_capability="AVX2", avx2=False, avx512=False, avx512_bf16=False,
                vnni=False, amx=False)
    return CpuFeatures(**{**base, **present})


@pytest.mark.parametrize("present, training, expected", [
    (dict(avx2=True, avx512=True, avx512_bf16=True, vnni=True), True, "bf16"),
    (dict(avx2=True, avx512=True, avx512_bf16=True, vnni=True), False, "bf16"),
    (dict(avx2=True, amx=True), True, "bf16"),
    (dict(avx2=True, avx512=True, vnni=True), True, "float32"),  # AVX-512 without BF16: bf16 is emulated
    (dict(avx2=True), True, "float32"),
    (dict(avx2=True), False, "int8"),  # inference without native bf16: fbgemm's int8 kernels beat float32
    (dict(), False, "float32"),
])
def test_auto_precision_follows_the_cpu(monkeypatch, present, training, expected):
    monkeypatch.setattr(features_module, "cpu_features", lambda: _features(**present))
    assert choose_precision("auto", torch.device("cpu"), training=training) == expected
    assert choose_precision("float32", torch.device("cpu"), training=training) == "float32"


def test_precision_choices_that_cannot_run_are_refused():
    with pytest.raises(ConfigError, match="inference on the CPU only"):
        choose_precision("int8", torch.device("cpu"), training=True)
    with pytest.raises(ConfigError, match="must be one of"):
        choose_precision("fp8", torch.device("cpu"))


def test_cpu_features_agree_with_torch():
    features = features_module.cpu_features()
    if features.torch_capability == "AVX512":
        assert features.avx512 and features.avx2
    assert features.kind() in ("avx512-bf16", "avx512", "avx2", "generic")
    assert features.model_name in features.summary()


def test_load_refuses_contradictory_precisions(tiny_model_dir):
    from contextemb import load

    with pytest.raises(ConfigError, match="exclude each other"):
        load(tiny_model_dir, quantize=True, precision="bf16")

def test_precision_reaches_the_vectors(tiny_model_dir):
    """float32 is repeatable exactly; bf16 LSTMs give other, but close, vectors (so the choice is applied)."""
    from contextemb import load

    text = ["이 영화 정말 재미있다, 배우들의 연기가 좋았다"]
    first = load(tiny_model_dir, precision="float32").embed(text)[0].vectors
    again = load(tiny_model_dir, precision="float32").embed(text)[0].vectors
    bf16 = load(tiny_model_dir, precision="bf16").embed(text)[0].vectors
    assert first.dtype == bf16.dtype == np.float32
    assert np.array_equal(first, again)
    assert not np.array_equal(first, bf16)
    top_f, top_b = first[-1].ravel(), bf16[-1].ravel()
    assert float(top_f @ top_b / (np.linalg.norm(top_f) * np.linalg.norm(top_b))) > 0.99


def test_heldout_split_is_by_text_and_complete(tmp_path):
    lines = [f"문장 {i} sentence" for i in range(3000)]
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("\n".join(lines[:2000]) + "\n", encoding="utf-8")
    second.write_text("\n".join(lines[1000:]) + "\n", encoding="utf-8")  # 1,000 lines shared with a.txt
    split = split_heldout([first, second], tmp_path / "out", every=50)
    heldout = (tmp_path / "out" / "heldout.txt").read_text(encoding="utf-8").splitlines()
    kept = [(tmp_path / "out" / "train" / f"{name}.txt").read_text(encoding="utf-8").splitlines()
            for name in ("a", "b")]
    assert split.heldout_lines == len(heldout) and split.train_lines == sum(map(len, kept))
    assert len(heldout) + sum(map(len, kept)) == 4000
    assert 40 <= len(set(heldout)) <= 100  # about 3,000 / 50 distinct lines
    assert not set(heldout) & (set(kept[0]) | set(kept[1]))
    assert all(is_heldout(line, 50) for line in heldout)


def test_resume_refuses_another_learning_rate(small_corpus, tmp_path, run_cli):
    tiny = ["--vocab-size", "800", "--hidden", "32", "--proj", "16", "--direction", "forward", "--batch-tokens",
            "256", "--no-progress", "--precision", "float32", "--lr", "0.005"]
    out = tmp_path / "m"
    assert run_cli("pretrain", small_corpus, "--out", out, "--max-steps", "2", *tiny).exit_code == 0
    result = run_cli("pretrain", small_corpus, "--out", out, "--max-steps", "3", "--resume", *tiny[:-1], "0.001")
    assert result.exit_code == 2
    assert "keeps the run's learning rate 0.005" in result.stderr
    assert run_cli("pretrain", small_corpus, "--out", out, "--max-steps", "3", "--resume", *tiny).exit_code == 0


@pytest.mark.parametrize("option, value, message", [
    ("--hidden", "64", "keeps the run's hidden 32 (config.json); --hidden 64 applies to a new run only"),
    ("--subword-sampling", "0.2", "keeps the run's subword-sampling 0 (config.json); --subword-sampling 0.2"),
    ("--boundary-piece", None, "keeps the run's boundary-piece false (config.json); --boundary-piece true"),
    ("--seed", "9", "keeps the run's seed 1234"),
])
def test_resume_refuses_an_option_it_would_otherwise_ignore(small_corpus, tmp_path, run_cli, option, value, message):
    """--resume takes the architecture and schedule from config.json: another value given is refused in one
    line, the same value given again is fine."""
    tiny = ["--vocab-size", "800", "--hidden", "32", "--proj", "16", "--direction", "forward", "--batch-tokens",
            "256", "--no-progress", "--precision", "float32"]
    out = tmp_path / "m"
    assert run_cli("pretrain", small_corpus, "--out", out, "--max-steps", "2", *tiny).exit_code == 0
    given = [option] if value is None else [option, value]
    result = run_cli("pretrain", small_corpus, "--out", out, "--max-steps", "3", "--resume", *tiny, *given)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.stderr
    again = run_cli("pretrain", small_corpus, "--out", out, "--max-steps", "3", "--resume", *tiny)
    assert again.exit_code == 0, again.stderr


def test_resume_takes_this_invocations_cadence_and_keeps_the_runs_without_one(small_corpus, tmp_path, run_cli):
    import json

    from contextemb.config import read_config

    tiny = ["--vocab-size", "800", "--hidden", "32", "--proj", "16", "--direction", "forward", "--batch-tokens",
            "256", "--no-progress", "--precision", "float32"]
    out = tmp_path / "m"
    assert run_cli("pretrain", small_corpus, "--out", out, "--max-steps", "2", "--log-every", "2", *tiny).exit_code == 0
    assert run_cli("pretrain", small_corpus, "--out", out, "--max-steps", "4", "--resume", *tiny).exit_code == 0
    assert read_config(out / "config.json").train.log_every == 2  # a bare --resume keeps the run's cadence
    assert run_cli("pretrain", small_corpus, "--out", out, "--max-steps", "6", "--resume", "--log-every", "1",
                   *tiny).exit_code == 0
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
             if json.loads(line).get("direction") == "forward" and "loss" in json.loads(line)]
    assert steps[-2:] == [5, 6], steps  # logged every step once --log-every 1 was given
    assert 3 not in steps, steps  # but every second step before it
