"""Faults: kill -9 at random moments (one during a checkpoint write), a full disk, a NaN loss, two runs into one
directory, two embedders reading one model. Nothing is lost: --resume ends where an uninterrupted run ends."""

from __future__ import annotations

import dataclasses
import errno
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import contextemb
from contextemb.config import ModelConfig
from contextemb.errors import TrainingError
from contextemb.io import checkpoint_path, load_tensors, weights_path
from contextemb.lm import LanguageModel
from contextemb.pretrain import checkpoint as checkpoint_module
from contextemb.pretrain.checkpoint import read_checkpoint_state
from contextemb.pretrain.train import pretrain

from conftest import tiny_config
from test_pretrain import TESTS, assert_same_weights, straight_run, tiny_run, wait_for  # noqa: F401  (fixture)


def _tiny(steps: int, **train) -> ModelConfig:
    config = tiny_config()
    return ModelConfig(lm=config.lm, train=dataclasses.replace(config.train, max_steps=steps, **train))


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_matches_uninterrupted(small_corpus, straight_run, tmp_path):
    """Five SIGKILLs at random moments, one of them while the checkpoint's temporary file is being written;
    each --resume goes on from the last complete checkpoint; the end is bit-for-bit the uninterrupted run
    (one thread, CPU: the path is deterministic)."""
    out = tmp_path / "m"
    rng = random.Random(3)
    ckpt = checkpoint_path(out, "forward")
    tmp_file = ckpt.with_name("forward.safetensors.tmp")
    kills, last_step = 0, 0
    while kills < 5:
        process = tiny_run(small_corpus, out, 40, *(["--resume"] if kills else []))
        deadline = time.monotonic() + 120
        if kills == 0:  # during a checkpoint write: kill as soon as the temporary file appears
            while not tmp_file.exists() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
        else:  # at a random moment after the run has made progress past the last checkpoint
            while process.poll() is None and time.monotonic() < deadline:
                state = read_checkpoint_state(ckpt) if ckpt.exists() else None
                if state is not None and state.step > last_step:
                    break
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
        assert process.poll() is None, "the run finished before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        state = read_checkpoint_state(ckpt) if ckpt.exists() else None  # always complete and readable
        assert state is None or 0 < state.step < 40
        last_step = state.step if state else 0
    final = tiny_run(small_corpus, out, 40, "--resume")
    assert final.wait(timeout=300) == 0, final.stdout.read()
    assert_same_weights(straight_run, out)


def test_full_disk_stops_with_message_and_keeps_previous_checkpoint(small_corpus, tmp_path, monkeypatch):
    out = tmp_path / "m"
    real_save = checkpoint_module.save_tensors
    calls = {"n": 0}

    def save_then_fail(path, tensors, metadata=None):
        calls["n"] += 1
        if calls["n"] >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(path, tensors, metadata)

    monkeypatch.setattr(checkpoint_module, "save_tensors", save_then_fail)
    with pytest.raises(TrainingError, match="No space left on device") as raised:
        pretrain(small_corpus, out, _tiny(20, checkpoint_every=5), directions=("forward",), threads=1,
                 progress=False)
    assert "step 10" in str(raised.value) and "intact" in str(raised.value)
    assert read_checkpoint_state(checkpoint_path(out, "forward")).step == 5
    load_tensors(checkpoint_path(out, "forward"))  # complete and readable


@pytest.mark.parametrize("skip", [False, True])
def test_non_finite_loss(small_corpus, tmp_path, monkeypatch, skip):
    real_forward = LanguageModel.forward
    calls = {"n": 0}

    def forward_with_a_nan_at_step_8(self, piece_ids, targets):
        loss = real_forward(self, piece_ids, targets)
        calls["n"] += 1
        if calls["n"] == 8:
            return loss._replace(nll_sum=loss.nll_sum * float("nan"))
        return loss

    monkeypatch.setattr(LanguageModel, "forward", forward_with_a_nan_at_step_8)
    out = tmp_path / "m"
    config = _tiny(12, checkpoint_every=5, skip_nonfinite=skip)
    if not skip:
        with pytest.raises(TrainingError, match="step 8"):
            pretrain(small_corpus, out, config, directions=("forward",), threads=1, progress=False)
        assert read_checkpoint_state(checkpoint_path(out, "forward")).step == 5  # the last good one
    else:
        (summary,) = pretrain(small_corpus, out, config, directions=("forward",), threads=1, progress=False)
        assert summary.skipped_nonfinite == 1 and summary.step == 12
        tensors, _ = load_tensors(weights_path(out, "forward"))
        assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


def _running_children(pid: int) -> list[int]:
    """Live processes whose parent is `pid` and that are multiprocessing's spawned workers (not its tracker)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue  # ended meanwhile
        if int(fields[1]) == pid and fields[0] != "Z" and b"spawn_main" in command:
            children.append(int(stat.parent.name))
    return children


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the workers through /proc")
def test_direction_workers_stop_when_pretrain_itself_is_killed(small_corpus, tmp_path):
    """kill -9 of the parent of the two direction processes: each worker checkpoints and stops within a minute,
    instead of training on unsupervised beside a --resume that writes the same checkpoints."""
    out = tmp_path / "m"
    process = subprocess.Popen([sys.executable, str(TESTS / "tiny_run.py"), str(small_corpus), str(out), "100000"],
                               env={**os.environ, "DIRECTIONS": "forward,backward"}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    for direction in ("forward", "backward"):
        wait_for(checkpoint_path(out, direction), process, timeout=180)
    workers = _running_children(process.pid)
    assert len(workers) == 2, workers
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), "a direction worker trained on after its parent was killed"
    for direction in ("forward", "backward"):
        assert read_checkpoint_state(checkpoint_path(out, direction)).step > 0


@pytest.mark.slow
def test_second_run_into_the_same_directory_refuses(small_corpus, tmp_path):
    out = tmp_path / "m"
    process = tiny_run(small_corpus, out, 400)
    try:
        wait_for(checkpoint_path(out, "forward"), process)
        with pytest.raises(TrainingError, match="in use"):
            pretrain(small_corpus, out, _tiny(5), directions=("forward",), threads=1, progress=False, resume=True)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)


@pytest.mark.slow
def test_two_embed_processes_read_one_model(tiny_model_dir, tmp_path):
    """Both processes finish, and each writes the vectors one process alone writes: reading one model directory
    at once (no lock, no shared state) changes nothing."""
    texts = ["삼성, 사상 첫 통합우승 4연패", "The bank raised its rates."]
    source = tmp_path / "s.txt"
    source.write_text("\n".join(texts * 20) + "\n", encoding="utf-8")
    command = [sys.executable, "-m", "contextemb.cli.main", "embed", str(tiny_model_dir), str(source)]
    options = ["--no-progress", "--threads", "1", "--precision", "float32"]
    processes = [subprocess.Popen(command + [str(tmp_path / f"out{i}.h5"), *options], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for i in range(2)]
    for process in processes:
        assert process.wait(timeout=300) == 0, process.stdout.read()
    expected = contextemb.load(tiny_model_dir, threads=1, precision="float32").embed(texts)
    for index in range(2):
        with h5py.File(tmp_path / f"out{index}.h5", "r") as h5:
            assert len([key for key in h5 if key != "sentence_to_index"]) == 2 * 20
            for line in range(2 * 20):
                np.testing.assert_allclose(h5[str(line)][()], expected[line % 2].vectors, atol=1e-5)
