"""Distributed pretraining: two gloo processes on 127.0.0.1, launched by torchrun, against one process.

The two ranks read every second batch of each pool; one process stepping on both batches at once (the same
global batch) must reach the same weights, also across a --resume.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from contextemb.config import read_config
from contextemb.io import load_tensors, read_jsonl, weights_path
from contextemb.model_dir import build_language_model
from contextemb.pretrain.data import BatchStream
from contextemb.pretrain.train import learning_rate_factor, make_optimizer
from contextemb.tokenization import Tokenizer

TORCHRUN = Path(sys.executable).with_name("torchrun")
MODEL_OPTIONS = ["--vocab-size", "800", "--hidden", "48", "--proj", "24", "--dropout", "0", "--batch-tokens", "512",
                 "--warmup-steps", "0", "--lr", "0.005", "--direction", "forward", "--log-every", "1",
                 "--eval-every", "1000", "--checkpoint-every", "1000", "--no-progress", "--precision", "float32"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(corpus: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [str(TORCHRUN), "--nnodes", "1", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(free_port()), "-m", "contextemb.cli.main", "pretrain", str(corpus),
               "--out", str(out), "--distributed", *MODEL_OPTIONS, *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def single_process_reference(corpus: Path, out: Path, *runs: int) -> dict[str, torch.Tensor]:
    """What one process gets from the same global batches: rank 0's and rank 1's batch together per step.

    runs: the --max-steps of each invocation (the learning-rate decay follows the current invocation's).
    """
    config = read_config(out / "config.json")
    train = config.train
    tokenizer = Tokenizer.from_file(out / "tokenizer.model")
    torch.manual_seed(train.seed)  # the forward direction's seed, as the trainer sets it
    model = build_language_model(config, tokenizer).train()
    optimizer = make_optimizer(model, train)
    steps = runs[-1] if runs else 0
    schedule = [learning_rate_factor(dataclasses.replace(train, max_steps=limit))(step)
                for index, limit in enumerate(runs) for step in range(runs[index - 1] if index else 0, limit)]
    streams = [BatchStream(corpus, tokenizer, "forward", max_pieces=config.lm.max_pieces,
                           batch_tokens=train.batch_tokens, bucket_batches=train.bucket_batches, seed=train.seed,
                           rank=rank, world_size=2) for rank in range(2)]
    for step, ((batch0, _), (batch1, _)) in enumerate(zip(*streams)):
        if step == steps:
            break
        first, second = model(batch0.piece_ids, batch0.targets), model(batch1.piece_ids, batch1.targets)
        loss = (first.nll_sum + second.nll_sum) / (first.count + second.count)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.clip_norm)
        for group in optimizer.param_groups:
            group["lr"] = train.lr * schedule[step]
        optimizer.step()
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")
def test_two_gloo_ranks_match_one_process_over_the_same_global_batches(tmp_path, demo_corpus):
    out = tmp_path / "ddp"
    torchrun(demo_corpus, out, "--max-steps", "4")
    records = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4]  # rank 0 alone writes metrics
    distributed, _ = load_tensors(weights_path(out, "forward"))
    expected = single_process_reference(demo_corpus, out, 4)
    initial = single_process_reference(demo_corpus, out)
    moved = max(float((expected[n] - initial[n]).abs().max()) for n in expected if expected[n].is_floating_point())
    assert moved > 1e-3  # the steps changed the weights, so agreeing means something
    for name, tensor in expected.items():
        torch.testing.assert_close(distributed[name], tensor, atol=2e-5, rtol=1e-4, msg=name)

    # resume with the same two ranks, two steps more: still the one-process weights
    torchrun(demo_corpus, out, "--max-steps", "6", "--resume")
    resumed, _ = load_tensors(weights_path(out, "forward"))
    expected = single_process_reference(demo_corpus, out, 4, 6)
    for name, tensor in expected.items():
        torch.testing.assert_close(resumed[name], tensor, atol=2e-5, rtol=1e-4, msg=name)

    # a resume with another number of processes would read other batches: refused in one line
    single = subprocess.run([sys.executable, "-m", "contextemb.cli.main", "pretrain", str(demo_corpus), "--out",
                             str(out), "--resume", "--direction", "forward", "--max-steps", "8", "--no-progress"],
                            capture_output=True, text=True, timeout=120)
    assert single.returncode == 2
    assert "written by 2 training process(es)" in single.stderr and "Traceback" not in single.stderr


def test_distributed_without_torchrun_is_a_clear_error(tmp_path, demo_corpus, monkeypatch, run_cli):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    result = run_cli("pretrain", demo_corpus, "--out", tmp_path / "m", "--distributed", "--max-steps", "1")
    assert result.exit_code == 2 and "torchrun" in result.stderr
    assert not (tmp_path / "m" / "config.json").exists()
