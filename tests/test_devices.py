"""Devices and precision: bf16 autocast trains on the CPU; a GPU that is not there is a clear error."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from contextemb.config import ModelConfig
from contextemb.errors import ConfigError
from contextemb.io import read_jsonl
from contextemb.pretrain.train import pretrain, resolve_device

from conftest import tiny_config


def test_bf16_autocast_trains_on_cpu(tmp_path, demo_corpus):
    config = tiny_config()
    config = ModelConfig(lm=config.lm, train=dataclasses.replace(config.train, max_steps=30, log_every=10,
                                                                 precision="bf16"))
    out = tmp_path / "bf16"
    summaries = pretrain(demo_corpus, out, config, directions=("forward",), threads=1, progress=False)
    assert summaries[0].step == 30
    losses = [r["loss"] for r in read_jsonl(out / "metrics.jsonl") if "loss" in r]
    assert all(math.isfinite(loss) for loss in losses) and losses[-1] < losses[0]
    assert '"precision": "bf16"' in (out / "config.json").read_text()


def test_missing_gpu_is_a_clear_error(tmp_path, demo_corpus, run_cli):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = run_cli("pretrain", demo_corpus, "--out", tmp_path / "m", "--device", "cuda", "--max-steps", "1")
    assert result.exit_code != 0 and "no CUDA GPU" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(ConfigError, match="cpu or cuda"):
        resolve_device("mps")
    with pytest.raises(ConfigError, match="not a device"):
        resolve_device("gpu0")
    assert resolve_device(None) == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_cuda_bf16_trains(tmp_path, demo_corpus):
    config = tiny_config()
    config = ModelConfig(lm=config.lm, train=dataclasses.replace(config.train, max_steps=20, precision="bf16"))
    summaries = pretrain(demo_corpus, tmp_path / "gpu", config, directions=("forward",), progress=False,
                         device="cuda")
    assert summaries[0].step == 20
