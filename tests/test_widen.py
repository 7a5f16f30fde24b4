"""contextemb widen: a model with more LSTM cells that computes what the narrower one does, and trains on from it."""

from __future__ import annotations

import dataclasses
import json

import torch

from contextemb.config import ModelConfig, read_config
from contextemb.io import load_tensors, weights_path
from contextemb.model_dir import load_model_dir
from contextemb.pretrain.train import pretrain
from contextemb.widen import widen_model_dir

from conftest import tiny_config


def _piece_ids(vocab: int, rows: int = 3, length: int = 17) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(4, vocab, (rows, length), generator=generator)


def test_widened_model_computes_the_same_states_and_loss(tiny_model_dir, tmp_path):
    widened = widen_model_dir(tiny_model_dir, tmp_path / "wide", hidden=160)
    narrow, wide = load_model_dir(tiny_model_dir), load_model_dir(widened)
    assert wide.config.lm.hidden == 160
    assert dataclasses.replace(wide.config.lm, hidden=96) == narrow.config.lm
    ids = _piece_ids(narrow.tokenizer.vocab_size)
    targets = torch.roll(ids, -1, dims=1)
    for direction in ("forward", "backward"):
        assert wide.models[direction].lstms[0].weight_hr_l0.shape == (48, 160)
        with torch.no_grad():
            before = narrow.models[direction].layer_states(ids)
            after = wide.models[direction].layer_states(ids)
            assert len(before) == len(after) == 3
            for layer, (old, new) in enumerate(zip(before, after)):
                assert torch.allclose(old, new, atol=1e-5), (direction, layer, float((old - new).abs().max()))
            loss_before = narrow.models[direction](ids, targets).mean
            loss_after = wide.models[direction](ids, targets).mean
        assert abs(float(loss_before) - float(loss_after)) < 1e-5
    card = json.loads((widened / "model_card.json").read_text(encoding="utf-8"))
    assert (card["hidden_before"], card["hidden"]) == (96, 160)


def test_training_from_a_widened_model_grows_its_new_cells(tiny_model_dir, small_corpus, tmp_path):
    widened = widen_model_dir(tiny_model_dir, tmp_path / "wide", hidden=128)
    out = tmp_path / "grown"
    config = tiny_config(hidden=128)
    config = ModelConfig(lm=config.lm, train=dataclasses.replace(config.train, max_steps=5, warmup_steps=0))
    pretrain(small_corpus, out, config, init=widened, parallel=False, threads=1, progress=False)
    assert read_config(out / "config.json").train.init_from == str(widened)
    start, _ = load_tensors(weights_path(widened, "forward"))
    after, _ = load_tensors(weights_path(out, "forward"))
    for layer in (0, 1):
        projection = f"lstms.{layer}.weight_hr_l0"
        assert float(start[projection][:, 96:].abs().max()) == 0.0
        assert float(after[projection][:, 96:].abs().max()) > 0.0  # the new cells now reach the output
        new_rows = after[f"lstms.{layer}.weight_ih_l0"].view(4, 128, -1)[:, 96:]
        assert not torch.equal(new_rows, start[f"lstms.{layer}.weight_ih_l0"].view(4, 128, -1)[:, 96:])


def test_widen_refuses_a_narrower_width_and_a_used_directory(tiny_model_dir, tmp_path, run_cli):
    result = run_cli("widen", tiny_model_dir, tmp_path / "w", "--hidden", "96")
    assert result.exit_code == 2
    assert "--hidden 96 must exceed the model's 96" in result.stderr
    assert not (tmp_path / "w").exists()
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine\n", encoding="utf-8")
    result = run_cli("widen", tiny_model_dir, used, "--hidden", "128")
    assert result.exit_code == 2
    assert "is not empty" in result.stderr
    assert sorted(path.name for path in used.iterdir()) == ["notes.txt"]
    result = run_cli("widen", tiny_model_dir, tmp_path / "ok", "--hidden", "128")
    assert result.exit_code == 0, result.stderr
    assert "widened to 128 LSTM cells" in result.stdout
