"""benchmarks/gpu_pretrain.sh, the prepared script for a lent GPU, run here on the CPU with tiny settings: it
trains both directions, scores the held-out file and exports a loadable model."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from contextemb import load
from contextemb.io import read_jsonl

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_pretrain.sh"


@pytest.mark.slow
def test_gpu_pretrain_script_runs_on_the_cpu_with_tiny_settings(small_corpus, demo_heldout, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    lines = small_corpus.read_text(encoding="utf-8").splitlines()
    (data / "corpus.txt").write_text("\n".join(lines[:1000]) + "\n", encoding="utf-8")
    (data / "other.txt").write_text("\n".join(lines[1000:]) + "\n", encoding="utf-8")
    shutil.copyfile(demo_heldout, data / "heldout.txt")
    env = {**os.environ, "DEVICE": "cpu", "SECONDS": "20", "BATCH": "512",
           "EXTRA": "--vocab-size 800 --hidden 48 --proj 24 --precision float32",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(SCRIPT), str(data), str(tmp_path / "out")], env=env, cwd=SCRIPT.parents[1],
                            capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    model = tmp_path / "out" / "model"
    records = list(read_jsonl(tmp_path / "out" / "metrics.jsonl"))
    assert {r["direction"] for r in records if "valid_bpc" in r} == {"forward", "backward"}
    assert load(model, precision="float32").embed(["영화가 좋다"])[0].vectors.shape[0] == 3
