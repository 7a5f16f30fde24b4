"""Subword regularization (`pretrain --subword-sampling ALPHA`): training batches take sampled segmentations of
the same text, within one process the same ones again for the same seed and pool. (Across processes
sentencepiece 0.2.3 draws others even with its seed set, so a real --resume is not bit-for-bit; the pretrain log
warns of it.)"""

from __future__ import annotations

import itertools
import json

import pytest

from contextemb.config import TrainConfig
from contextemb.errors import ConfigError
from contextemb.pretrain.data import BatchStream, ReaderPosition
from contextemb.tokenization import Tokenizer, train_sentencepiece

TEXTS = ["삼성, 사상 첫 통합우승 4연패", "한화, 악몽같은 연패 언제 탈출하나", "The bank of the river was muddy.",
         "영화가 정말 재미있었어요 배우들 연기도 좋고"]


@pytest.fixture(scope="module")
def tokenizer(small_corpus):
    lines = small_corpus.read_text(encoding="utf-8").splitlines()
    return Tokenizer(train_sentencepiece(lines, 800))


def test_sampled_segmentations_spell_the_same_text_and_repeat_with_the_seed(tokenizer):
    best = tokenizer.encode(TEXTS)
    sampled = tokenizer.encode_sampled(TEXTS, 0.1, seed=11)
    assert tokenizer.encode_sampled(TEXTS, 0.1, seed=11) == sampled
    assert [tokenizer.decode(ids) for ids in sampled] == [tokenizer.decode(ids) for ids in best]
    assert sampled != best  # at alpha 0.1 some segmentation of these four lines is not the best one
    others = [tokenizer.encode_sampled(TEXTS, 0.1, seed=seed) for seed in range(5)]
    assert any(other != sampled for other in others)
    assert tokenizer.encode(TEXTS) == best  # sampling leaves the deterministic path as it was


def stream(corpus, tokenizer, alpha, start=ReaderPosition()):
    return BatchStream(corpus, tokenizer, "forward", max_pieces=64, batch_tokens=256, seed=3, bucket_batches=2,
                       start=start, subword_sampling=alpha)


def test_within_a_process_a_restarted_sampling_stream_gives_the_batches_of_the_unbroken_one(small_corpus,
                                                                                             tokenizer):
    """Over several pools: restarting from any position in the same process gives the same sampled pieces as
    reading on (each pool is seeded by seed and pool, not by how much was read before)."""
    unbroken = list(itertools.islice(stream(small_corpus, tokenizer, 0.2), 24))
    assert len({position.mix.pool for _, position in unbroken}) >= 3
    for cut in (5, 13):
        resumed = itertools.islice(stream(small_corpus, tokenizer, 0.2, start=unbroken[cut - 1][1]), 24 - cut)
        for (expected, _), (batch, _) in zip(unbroken[cut:], resumed, strict=True):
            assert batch.piece_ids.equal(expected.piece_ids) and batch.targets.equal(expected.targets)
    plain = list(itertools.islice(stream(small_corpus, tokenizer, 0.0), 24))
    sampled_pieces = sum(batch.num_targets for batch, _ in unbroken)
    plain_pieces = sum(batch.num_targets for batch, _ in plain)
    assert sampled_pieces != plain_pieces or any(not a.piece_ids.equal(b.piece_ids)
                                                 for (a, _), (b, _) in zip(unbroken, plain))


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_an_alpha_outside_0_to_1_is_refused(alpha):
    with pytest.raises(ConfigError, match="subword_sampling"):
        TrainConfig(subword_sampling=alpha)


def test_the_cli_records_sampling_in_the_run_and_refuses_a_bad_alpha(run_cli, tmp_path, small_corpus):
    tiny = ["--vocab-size", "800", "--layers", "1", "--hidden", "32", "--proj", "16", "--direction", "forward",
            "--max-steps", "3", "--batch-tokens", "256", "--no-progress", "--threads", "1"]
    result = run_cli("pretrain", small_corpus, "--out", tmp_path / "m", *tiny, "--subword-sampling", "0.3")
    assert result.exit_code == 0, result.output
    assert "subword regularization" in result.stderr
    assert json.loads((tmp_path / "m" / "config.json").read_text())["train"]["subword_sampling"] == 0.3
    more = [option if option != "3" else "5" for option in tiny]  # --max-steps 5
    resumed = run_cli("pretrain", small_corpus, "--out", tmp_path / "m", *more, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "differ from an unbroken run's" in resumed.stderr  # the resume says it is not bit-for-bit
    refused = run_cli("pretrain", small_corpus, "--out", tmp_path / "n", *tiny, "--subword-sampling", "2")
    assert refused.exit_code == 2 and "Traceback" not in refused.stderr
    lines = [line for line in refused.stderr.splitlines() if line.strip() and " INFO " not in line]
    assert lines == [line for line in lines if line.startswith("Error: ")] and len(lines) == 1
    assert "subword_sampling" in lines[0]


def test_distributed_training_refuses_sampling_before_it_starts(run_cli, tmp_path, small_corpus):
    """Each rank would sample its own segmentations and cut the pool into a different number of batches."""
    result = run_cli("pretrain", small_corpus, "--out", tmp_path / "d", "--distributed", "--subword-sampling", "0.2",
                     "--max-steps", "2", "--no-progress")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: --subword-sampling cannot train --distributed"), lines
    assert not (tmp_path / "d").exists()  # refused before anything was written
