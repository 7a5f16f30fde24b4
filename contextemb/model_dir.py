"""Build language models from a config and tokenizer, save their weights, and load a model directory."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import torch

from .config import CONFIG_FILE_NAME, ModelConfig, read_config
from .errors import ModelFormatError
from .io import TOKENIZER_FILE, load_tensors, save_tensors, weights_path
from .lm import LanguageModel
from .tokenization import Tokenizer, char_table


def build_language_model(config: ModelConfig, tokenizer: Tokenizer) -> LanguageModel:
    """A freshly initialised LanguageModel for this config and tokenizer (either direction)."""
    lm = config.lm
    table = None
    if lm.input == "char-cnn":
        table = torch.from_numpy(char_table(tokenizer, lm.char_mode, lm.max_chars))
    return LanguageModel(lm, table)


def save_weights(model: LanguageModel, path: Path) -> None:
    """Atomically write the model's weights (and its char table buffer) as safetensors."""
    save_tensors(path, model.state_dict(), metadata={"format": "contextemb-lm", "format_version": "1"})


def load_weights(model: LanguageModel, path: Path) -> None:
    """Load safetensors weights into `model`, refusing missing, unexpected or mis-shaped tensors."""
    tensors, _ = load_tensors(path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ModelFormatError(f"{path} does not match config.json: missing {missing[:3]}, unexpected {unexpected[:3]}")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape or tensor.dtype != expected[name].dtype:
            raise ModelFormatError(f"{path}: tensor {name} is {tuple(tensor.shape)} {tensor.dtype}, "
                                   f"config.json needs {tuple(expected[name].shape)} {expected[name].dtype}")
    model.load_state_dict(tensors)


class LoadedModels(NamedTuple):
    config: ModelConfig
    tokenizer: Tokenizer
    models: dict[str, LanguageModel]  # direction -> model, in eval mode


def load_model_dir(model_dir: Path, directions: Sequence[str] = ("forward", "backward")) -> LoadedModels:
    """Load config.json, tokenizer.model and the weights of the given directions from a model directory."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelFormatError(f"{model_dir} is not a model directory")
    config = read_config(model_dir / CONFIG_FILE_NAME)
    tokenizer = Tokenizer.from_file(model_dir / TOKENIZER_FILE)
    if config.lm.pieces is not None and tokenizer.vocab_size != config.lm.pieces:
        raise ModelFormatError(f"{model_dir}: tokenizer.model has {tokenizer.vocab_size} pieces, "
                               f"config.json says {config.lm.pieces}")
    models = {}
    for direction in directions:
        path = weights_path(model_dir, direction)
        if not path.is_file():
            raise ModelFormatError(f"{path} not found: train the {direction} model first "
                                   f"(contextemb pretrain ... --direction {direction})")
        model = build_language_model(config, tokenizer)
        load_weights(model, path)
        models[direction] = model.eval()
    return LoadedModels(config, tokenizer, models)
