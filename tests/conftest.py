"""Shared fixtures: the bundled demo corpus, and one tiny model trained once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from contextemb.cli.main import cli
from contextemb.config import LMConfig, ModelConfig, TrainConfig

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "contextemb" / "resources" / "demo"
SHARED = REPO.parent / "shared"

torch.set_num_threads(1)  # tests are small; one thread keeps them deterministic and leaves a core free


def tiny_config(**lm_overrides) -> ModelConfig:
    """A model small enough to train for a few seconds on one core."""
    lm = dict(input="char-cnn", vocab_size=800, hidden=96, projection=48, num_layers=2, dropout=0.0,
              filters=((1, 16), (2, 16), (3, 32)), highway_layers=1, char_dim=8, max_pieces=64)
    lm.update(lm_overrides)
    # float32 whatever the CPU: tests compare against fixed numbers and must not depend on the machine's bf16
    train = TrainConfig(precision="float32", lr=5e-3, warmup_steps=10, batch_tokens=512, eval_every=1000,
                        checkpoint_every=1000,
                        log_every=1000, seed=7)
    return ModelConfig(lm=LMConfig(**lm), train=train)


@pytest.fixture(scope="session")
def demo_corpus() -> Path:
    return DEMO / "corpus.txt"


@pytest.fixture(scope="session")
def demo_heldout() -> Path:
    return DEMO / "heldout.txt"


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory, demo_corpus) -> Path:
    """The first 1,500 lines of the demo corpus: enough text for a tokenizer of 800 pieces."""
    path = tmp_path_factory.mktemp("corpus") / "small.txt"
    lines = demo_corpus.read_text(encoding="utf-8").splitlines()[:1500]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, demo_corpus) -> Path:
    """Both directions of a tiny char-CNN model, trained in-process for 250 steps on the demo corpus."""
    from contextemb.pretrain.train import pretrain
    import dataclasses

    out = tmp_path_factory.mktemp("models") / "tiny"
    config = tiny_config()
    config = ModelConfig(lm=config.lm, train=dataclasses.replace(config.train, max_steps=250))
    pretrain(demo_corpus, out, config, parallel=False, threads=1, progress=False)
    return out


@pytest.fixture()
def run_cli():
    """Invoke the `contextemb` command in-process; returns click's Result (exit_code, stdout, stderr)."""
    runner = CliRunner()

    def invoke(*args: str, stdin: str | bytes | None = None):
        return runner.invoke(cli, [str(a) for a in args], input=stdin, catch_exceptions=False)

    return invoke
