"""Widen a trained model's LSTM cells without changing what it computes (Net2Net, Chen et al., 2016).

A wider model (more LSTM cells per layer, the same projection) trained from scratch starts from nothing; widened,
it starts from everything the narrower model has read. In each layer's projected LSTM (contextemb.projected_lstm)::

    gates_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh      (4 * hidden) rows: the old cells' rows are copied,
                                                          the new cells' rows are freshly initialised (nn.LSTM's)
    h_t     = W_hr (sigmoid(o) * tanh(c_t))               W_hr: (projection, hidden): the new cells' columns are 0

The new cells run but add nothing to h_t, so every layer's output -- the states, the next-piece probabilities,
the embeddings -- is what the narrower model gives (equal up to float rounding). Training then grows the new
columns of W_hr from their first step (their gradient is the cells' output times dL/dh_t, not zero), and through
them the new cells' own weights. Continue with `contextemb pretrain ... --init WIDENED_DIR`.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Union

import torch
from torch import nn

from .config import CONFIG_FILE_NAME, ModelConfig
from .errors import ConfigError
from .io import TOKENIZER_FILE, atomic_write, atomic_write_text, weights_path
from .lm import LanguageModel
from .model_dir import build_language_model, load_model_dir, save_weights
from .packaged import resolve_model

CARD_FILE = "model_card.json"


def widen_lstm(narrow: nn.LSTM, wide: nn.LSTM) -> None:
    """Copy `narrow`'s cells into the first cells of each gate block of `wide` (one-layer projected nn.LSTMs with
    the same input and projection sizes) and zero the projection columns of `wide`'s other cells. `wide`'s other
    rows keep their own initialisation."""
    old, new = narrow.hidden_size, wide.hidden_size
    if (narrow.input_size, narrow.proj_size) != (wide.input_size, wide.proj_size) or new < old:
        raise ValueError(f"cannot widen an LSTM of {narrow.input_size}->{old}->{narrow.proj_size} "
                         f"into {wide.input_size}->{new}->{wide.proj_size}")
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            source, target = getattr(narrow, name), getattr(wide, name)
            for gate in range(4):  # i, f, g, o blocks of `hidden` rows each
                target[gate * new:gate * new + old] = source[gate * old:(gate + 1) * old]
        wide.weight_hr_l0.zero_()
        wide.weight_hr_l0[:, :old] = narrow.weight_hr_l0


def widen_language_model(narrow: LanguageModel, wide: LanguageModel) -> None:
    """Load `narrow` into `wide` (same configuration but a larger `hidden`): every tensor outside the LSTMs is
    copied, each LSTM widened by widen_lstm."""
    wide_state = wide.state_dict()
    for name, tensor in narrow.state_dict().items():
        if not name.startswith("lstms."):
            if wide_state[name].shape != tensor.shape:
                raise ValueError(f"{name}: {tuple(tensor.shape)} against {tuple(wide_state[name].shape)}")
            wide_state[name].copy_(tensor)
    for narrow_lstm, wide_lstm in zip(narrow.lstms, wide.lstms):
        widen_lstm(narrow_lstm, wide_lstm)


def widen_model_dir(model: Union[str, Path], out_dir: Union[str, Path], hidden: int, seed: int = 0) -> Path:
    """Write `model` (a packaged name or a model directory) widened to `hidden` LSTM cells per layer into the new
    directory `out_dir`: config.json (hidden changed), tokenizer.model, both directions' float32 weights, and
    model_card.json saying where it came from. seed: the new cells' initialisation."""
    source, out_dir = resolve_model(model), Path(out_dir)
    loaded = load_model_dir(source)
    old = loaded.config.lm.hidden
    if hidden <= old:
        raise ConfigError(f"--hidden {hidden} must exceed the model's {old} LSTM cells per layer")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError(f"{out_dir} exists and is not empty: widen writes a new model directory")
    config = ModelConfig(lm=dataclasses.replace(loaded.config.lm, hidden=hidden), train=loaded.config.train)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    for direction, narrow in loaded.models.items():
        wide = build_language_model(config, loaded.tokenizer)
        widen_language_model(narrow, wide)
        save_weights(wide, weights_path(out_dir, direction))
    atomic_write(out_dir / TOKENIZER_FILE, lambda tmp: shutil.copyfile(source / TOKENIZER_FILE, tmp))
    card = {"name": f"{Path(str(model)).name} widened to {hidden} cells",
            "what": f"{model} with its LSTM cells widened from {old} to {hidden} per layer by `contextemb widen` "
                    f"(function-preserving: the new cells' projection columns are zero); not trained since",
            "widened_from": str(model), "hidden_before": old, "hidden": hidden, "seed": seed}
    if (source / CARD_FILE).is_file():
        card["card_before"] = json.loads((source / CARD_FILE).read_text(encoding="utf-8"))
    atomic_write_text(out_dir / CARD_FILE, json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(out_dir / CONFIG_FILE_NAME, config.to_json())  # last: a directory without it is no model
    return out_dir
