"""Devices and precision: bf16 autocast trains on the CPU; a GPU that is not there is a clear error."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

import contextemb
from contextemb.config import ModelConfig
from contextemb.errors import ConfigError
from contextemb.io import read_jsonl
from contextemb.devices import resolve_device
from contextemb.pretrain.train import pretrain

from conftest import tiny_config


def _losses(corpus, out, precision: str) -> list[float]:
    """The logged training losses (every 10 steps) of 30 steps of the tiny forward model."""
    config = tiny_config()
    config = ModelConfig(lm=config.lm, train=dataclasses.replace(config.train, max_steps=30, log_every=10,
                                                                 precision=precision))
    summaries = pretrain(corpus, out, config, directions=("forward",), threads=1, progress=False)
    assert summaries[0].step == 30
    assert f'"precision": "{precision}"' in (out / "config.json").read_text()
    return [r["loss"] for r in read_jsonl(out / "metrics.jsonl") if "loss" in r]


def test_bf16_autocast_trains_on_cpu_as_float32_does(tmp_path, demo_corpus):
    """Measured with seeds 7, 8, 9: bf16 and float32 losses differ by 0.004 at most at each logged step, and the
    loss falls by 0.57-0.93 from the first ten steps' mean to the last ten's. The bars (0.03, 0.3) leave room
    for other kernels, and still fail if autocast broke the gradients or did not train at all."""
    in_bf16 = _losses(demo_corpus, tmp_path / "bf16", "bf16")
    in_float32 = _losses(demo_corpus, tmp_path / "float32", "float32")
    assert len(in_bf16) == len(in_float32) == 3 and all(math.isfinite(loss) for loss in in_bf16)
    assert max(abs(a - b) for a, b in zip(in_bf16, in_float32)) < 0.03, (in_bf16, in_float32)
    assert in_bf16 != in_float32  # autocast did run: bf16 rounding shows in the losses (0.003 at step 20)
    assert in_bf16[-1] < in_bf16[0] - 0.3, in_bf16


def test_missing_gpu_is_a_clear_error(tmp_path, demo_corpus, tiny_model_dir, run_cli):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = run_cli("pretrain", demo_corpus, "--out", tmp_path / "m", "--device", "cuda", "--max-steps", "1")
    assert result.exit_code == 2 and "no CUDA GPU" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("embed", tiny_model_dir, demo_corpus, tmp_path / "v.h5", "--device", "cuda")
    assert result.exit_code == 2 and "no CUDA GPU" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        contextemb.load(tiny_model_dir, device="cuda:0")
    with pytest.raises(ConfigError, match="cpu or cuda"):
        resolve_device("mps")
    with pytest.raises(ConfigError, match="not a device"):
        resolve_device("gpu0")
    assert resolve_device(None) == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_cuda_bf16_trains(tmp_path, demo_corpus):
    config = tiny_config()
    config = ModelConfig(lm=config.lm, train=dataclasses.replace(config.train, max_steps=20, log_every=5,
                                                                 precision="bf16"))
    summaries = pretrain(demo_corpus, tmp_path / "gpu", config, directions=("forward",), progress=False,
                         device="cuda")
    assert summaries[0].step == 20
    losses = [r["loss"] for r in read_jsonl(tmp_path / "gpu" / "metrics.jsonl") if "loss" in r]
    assert all(math.isfinite(loss) for loss in losses) and losses[-1] < losses[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_cuda_embeddings_match_the_cpu(tiny_model_dir):
    texts = ["한화, 악몽같은 연패 언제 탈출하나", "the bank of the river", ""]
    on_cpu = contextemb.load(tiny_model_dir, precision="float32").embed(texts)
    on_gpu = contextemb.load(tiny_model_dir, device="cuda", precision="float32").embed(texts)
    for a, b in zip(on_cpu, on_gpu):  # convolutions may run in TF32 on the GPU: close, not equal
        assert a.words == b.words and isinstance(b.vectors, np.ndarray)
        if a.words:
            assert _min_cosine(a.vectors, b.vectors) > 0.999
    in_bf16 = contextemb.load(tiny_model_dir, device="cuda", precision="bf16").embed(texts)
    for a, b in zip(on_cpu, in_bf16):
        if a.words:
            assert _min_cosine(a.vectors, b.vectors) > 0.95


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest cosine between matching vectors of a and b: (..., dim) each."""
    return float(((a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))).min())
