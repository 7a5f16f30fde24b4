"""Resumable training state in one safetensors file, written atomically.

Tensors: the model (``model.<name>``), the optimizer's per-parameter state (``optimizer.<index>.<name>``) and
the torch RNG state (``rng.torch``). The rest (step, tokens, elapsed seconds, reader position, optimizer
hyper-parameters, scheduler state) is JSON in the file's metadata. One file means one os.replace: a crash
leaves the previous checkpoint or the new one, never half of each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from contextemb.errors import ModelFormatError
from contextemb.io import load_tensors, save_tensors

from .data import ReaderPosition

CHECKPOINT_FORMAT = "contextemb-checkpoint-1"


@dataclass
class TrainingState:
    """Counters that travel with a checkpoint."""

    step: int = 0
    tokens: int = 0
    characters: int = 0
    elapsed_s: float = 0.0
    skipped_nonfinite: int = 0
    world_size: int = 1  # processes that trained together: the reader position counts rounds of world_size batches
    position: ReaderPosition = field(default_factory=ReaderPosition)
    corpus: list[str] = field(default_factory=list)  # the corpus files' names, in order: a resume must read the same


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, state: TrainingState) -> None:
    tensors = {f"model.{name}": tensor for name, tensor in model.state_dict().items()}
    optimizer_state = optimizer.state_dict()
    for index, per_param in optimizer_state["state"].items():
        for name, value in per_param.items():
            tensors[f"optimizer.{index}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
    tensors["rng.torch"] = torch.get_rng_state()
    scheduler_state = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "state": json.dumps({
            "step": state.step, "tokens": state.tokens, "characters": state.characters,
            "elapsed_s": state.elapsed_s, "skipped_nonfinite": state.skipped_nonfinite,
            "world_size": state.world_size, "position": state.position.to_dict(), "corpus": state.corpus,
        }),
        "optimizer_groups": json.dumps(optimizer_state["param_groups"]),
        "scheduler": json.dumps(scheduler_state),
    }
    save_tensors(path, tensors, metadata)


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler) -> TrainingState:
    """Restore model, optimizer, scheduler and RNG from `path`; return the counters."""
    tensors, metadata = load_tensors(path)
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise ModelFormatError(f"{path} is not a contextemb checkpoint (format {metadata.get('format')!r})")
    try:
        counters = json.loads(metadata["state"])
        groups = json.loads(metadata["optimizer_groups"])
        scheduler_state = json.loads(metadata["scheduler"])
    except (KeyError, json.JSONDecodeError) as error:
        raise ModelFormatError(f"{path}: checkpoint metadata is damaged ({error})") from None
    model_state = {name[len("model."):]: t for name, t in tensors.items() if name.startswith("model.")}
    expected = model.state_dict()
    if set(model_state) != set(expected) or any(model_state[k].shape != expected[k].shape for k in expected):
        raise ModelFormatError(f"{path} was written by a model of another shape than config.json describes")
    model.load_state_dict(model_state)
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            per_param.setdefault(int(index), {})[key] = tensor
    optimizer.load_state_dict({"state": per_param, "param_groups": groups})
    scheduler.load_state_dict({**scheduler_state, "lr_lambdas": [None]})  # the lambda is rebuilt from config.json
    torch.set_rng_state(tensors["rng.torch"])
    return _state_from_counters(counters)


def read_checkpoint_state(path: Path) -> Optional[TrainingState]:
    """The counters of a checkpoint without loading its tensors (None if there is none)."""
    if not Path(path).is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        counters = json.loads((handle.metadata() or {})["state"])
    return _state_from_counters(counters)


def _state_from_counters(counters: dict) -> TrainingState:
    position = ReaderPosition.from_dict(counters.pop("position"))
    known = {"step", "tokens", "characters", "elapsed_s", "skipped_nonfinite", "world_size", "corpus"}
    return TrainingState(position=position, **{k: v for k, v in counters.items() if k in known})
