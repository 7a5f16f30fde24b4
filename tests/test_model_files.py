"""Model directories that are broken or hostile are refused with a typed error, and never unpickled."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch
from safetensors.torch import save_file

import contextemb
from contextemb.errors import ConfigError, ModelFormatError, TokenizerError
from contextemb.model_dir import load_model_dir


@pytest.fixture()
def model_copy(tiny_model_dir, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy, ignore=shutil.ignore_patterns("checkpoints", ".lock"))
    return copy


@pytest.mark.parametrize("name", ["config.json", "tokenizer.model", "forward.safetensors", "backward.safetensors"])
def test_missing_file(model_copy, name):
    (model_copy / name).unlink()
    with pytest.raises((ModelFormatError, ConfigError, TokenizerError)):
        load_model_dir(model_copy)


def test_other_format_version(model_copy):
    config = json.loads((model_copy / "config.json").read_text())
    config["format_version"] = 99
    (model_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="format_version"):
        load_model_dir(model_copy)


def test_unknown_config_key(model_copy):
    config = json.loads((model_copy / "config.json").read_text())
    config["lm"]["hiden"] = 3
    (model_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="hiden"):
        load_model_dir(model_copy)


def test_config_that_is_not_json(model_copy):
    (model_copy / "config.json").write_text("{not json")
    with pytest.raises(ConfigError):
        load_model_dir(model_copy)


def test_wrong_shape(model_copy):
    path = model_copy / "forward.safetensors"
    tensors = contextemb.io.load_tensors(path)[0]
    name = next(n for n in tensors if n.startswith("lstms.0.weight_ih"))
    tensors[name] = torch.zeros(3, 3)
    save_file(tensors, str(path))
    with pytest.raises(ModelFormatError, match=name):
        load_model_dir(model_copy)


def test_wrong_dtype(model_copy):
    path = model_copy / "backward.safetensors"
    tensors = contextemb.io.load_tensors(path)[0]
    name = next(n for n in tensors if n.startswith("lstms.0.weight_ih"))
    tensors[name] = tensors[name].to(torch.int32)
    save_file(tensors, str(path))
    with pytest.raises(ModelFormatError, match="int32"):
        load_model_dir(model_copy)


def test_half_precision_weights_load_as_float32(model_copy):
    path = model_copy / "forward.safetensors"
    tensors = contextemb.io.load_tensors(path)[0]
    save_file({n: t.half() if t.is_floating_point() else t for n, t in tensors.items()}, str(path))
    model = load_model_dir(model_copy).models["forward"]
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_truncated_file(model_copy):
    path = model_copy / "forward.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelFormatError, match="not unpickled"):
        load_model_dir(model_copy)


class Boom:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_pickle_is_refused_never_unpickled(model_copy, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (model_copy / "forward.safetensors").write_bytes(pickle.dumps({"weights": Boom()}))
    with pytest.raises(ModelFormatError):
        load_model_dir(model_copy)
    torch.save({"x": torch.zeros(2)}, model_copy / "backward.safetensors")
    with pytest.raises(ModelFormatError):
        load_model_dir(model_copy, ("backward",))
    assert not (tmp_path / "PWNED").exists()


def test_tokenizer_that_is_not_sentencepiece(model_copy):
    (model_copy / "tokenizer.model").write_bytes(b"\x00garbage")
    with pytest.raises(TokenizerError):
        load_model_dir(model_copy)


def test_unknown_model_name():
    with pytest.raises(ModelFormatError, match="packaged"):
        contextemb.load("no-such-model")


def test_cli_reports_broken_model_in_one_line(run_cli, model_copy, tmp_path):
    (model_copy / "forward.safetensors").write_bytes(b"garbage")
    text = tmp_path / "t.txt"
    text.write_text("hello\n")
    result = run_cli("perplexity", model_copy, text)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "not unpickled" in result.stderr


def test_a_config_without_input_is_the_char_cnn_it_was_written_for(model_copy):
    """Subword input is the default now; a config.json that names no input was written when char-cnn was."""
    from contextemb.config import LMConfig

    assert LMConfig().input == "subword"
    config = json.loads((model_copy / "config.json").read_text())
    assert config["lm"].pop("input") == "char-cnn"
    (model_copy / "config.json").write_text(json.dumps(config))
    loaded = load_model_dir(model_copy)
    assert loaded.config.lm.input == "char-cnn"
    assert loaded.models["forward"](torch.tensor([[1, 5, 2]]), torch.tensor([[5, 2, 0]])).count == 2
