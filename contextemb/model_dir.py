"""Build language models from a config and tokenizer, save their weights, and load a model directory."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Optional, Sequence, Union

import torch

from .config import CONFIG_FILE_NAME, ModelConfig, read_config
from .errors import ModelFormatError
from .io import TOKENIZER_FILE, load_tensors, save_tensors, weights_path
from .lm import LanguageModel
from .packaged import resolve_model
from .tokenization import Tokenizer, char_table


def build_language_model(config: ModelConfig, tokenizer: Tokenizer) -> LanguageModel:
    """A freshly initialised LanguageModel for this config and tokenizer (either direction)."""
    lm = config.lm
    table = None
    if lm.input == "char-cnn":
        table = torch.from_numpy(char_table(tokenizer, lm.char_mode, lm.max_chars))
    return LanguageModel(lm, table)


HALF_PRECISION = (torch.float16, torch.bfloat16)


def save_weights(model: LanguageModel, path: Path, dtype: Optional[torch.dtype] = None) -> None:
    """Atomically write the model's weights (and its char table buffer) as safetensors.

    dtype=torch.float16 stores floating-point tensors at half size (packaged models); loading casts them back.
    """
    tensors = model.state_dict()
    if dtype is not None:
        tensors = {name: t.to(dtype) if t.is_floating_point() else t for name, t in tensors.items()}
    save_tensors(path, tensors, metadata={"format": "contextemb-lm", "format_version": "1"})


def load_weights(model: LanguageModel, path: Path) -> None:
    """Load safetensors weights into `model`, refusing missing, unexpected or mis-shaped tensors.

    Floating-point tensors stored in float16/bfloat16 are cast to the model's dtype, integer tensors (the char
    table) to its integer type; any other dtype mismatch is refused.
    """
    tensors, _ = load_tensors(path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ModelFormatError(f"{path} does not match config.json: missing {missing[:3]}, unexpected {unexpected[:3]}")
    for name, tensor in tensors.items():
        want = expected[name]
        castable = (tensor.dtype in HALF_PRECISION and want.is_floating_point()) or \
            (not tensor.is_floating_point() and not want.is_floating_point() and tensor.dtype != torch.bool)
        if tensor.shape != want.shape or (tensor.dtype != want.dtype and not castable):
            raise ModelFormatError(f"{path}: tensor {name} is {tuple(tensor.shape)} {tensor.dtype}, "
                                   f"config.json needs {tuple(want.shape)} {want.dtype}")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ModelFormatError(f"{path}: tensor {name} holds NaN or infinite values")
    model.load_state_dict({name: t.to(expected[name].dtype) for name, t in tensors.items()})


class LoadedModels(NamedTuple):
    config: ModelConfig
    tokenizer: Tokenizer
    models: dict[str, LanguageModel]  # direction -> model, in eval mode


def load_model_dir(model_dir: Union[str, Path], directions: Sequence[str] = ("forward", "backward")) -> LoadedModels:
    """Load config.json, tokenizer.model and the weights of the given directions from a model directory
    (or a packaged model, by name)."""
    model_dir = resolve_model(model_dir)
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


def export_model_dir(model_dir: Union[str, Path], out_dir: Path, *, half: bool = True,
                     card: Optional[dict] = None) -> Path:
    """Copy a trained model directory for distribution: config.json, tokenizer.model, metrics.jsonl and both
    directions' weights (float16 with half=True: half the size, loaded back as float32), no checkpoints.
    `card` (how it was trained, held-out scores) is written as model_card.json."""
    import json
    import shutil

    from .io import METRICS_FILE, atomic_write, atomic_write_text

    model_dir, out_dir = resolve_model(model_dir), Path(out_dir)
    loaded = load_model_dir(model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_FILE_NAME, TOKENIZER_FILE, METRICS_FILE):
        if (model_dir / name).is_file():
            atomic_write(out_dir / name, lambda tmp, source=model_dir / name: shutil.copyfile(source, tmp))
    for direction, model in loaded.models.items():
        save_weights(model, weights_path(out_dir, direction), dtype=torch.float16 if half else None)
    if card is not None:
        atomic_write_text(out_dir / "model_card.json", json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    return out_dir
