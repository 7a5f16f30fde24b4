"""LMConfig and TrainConfig, and the versioned config.json that holds them.

One frozen dataclass per concern. ``config.json`` in a model directory is::

    {"format_version": 1, "lm": {...LMConfig...}, "train": {...TrainConfig...}}

Loading refuses another format version or unknown keys with a ConfigError.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from .errors import ConfigError

FORMAT_VERSION = 1
CONFIG_FILE_NAME = "config.json"

InputKind = Literal["char-cnn", "subword"]
CharMode = Literal["bytes", "chars", "jamo"]
SoftmaxKind = Literal["adaptive", "full"]
Direction = Literal["forward", "backward"]


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")


def _check_positive(name: str, value, allow_zero: bool = False) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


@dataclass(frozen=True)
class LMConfig:
    """Architecture of one direction's language model (both directions use the same one)."""

    vocab_size: int = 8000  # requested sentencepiece pieces; the trained size is in `pieces`
    # the tokenizer was trained with "▁" (a space) always a piece of its own, so that a word is spelled with the
    # same pieces after a space as after a digit or at the start ("4연패" and " 연패": 연 패 both times)
    boundary_piece: bool = False
    input: InputKind = "subword"  # chosen by the ablation (docs/ABLATION.md); a config.json without it means char-cnn
    char_mode: CharMode = "bytes"  # char-cnn only: UTF-8 bytes (as ELMo), corpus chars, or Hangul jamo
    max_chars: int = 50  # characters per piece seen by the char-CNN, marks included (ELMo: 50)
    char_dim: int = 16  # character embedding width
    # (width, number of filters) of each char-CNN convolution, widths 1..N as in ELMo
    filters: tuple[tuple[int, int], ...] = ((1, 32), (2, 32), (3, 64), (4, 128), (5, 256))
    highway_layers: int = 2
    num_layers: int = 2  # stacked one-layer LSTMs
    hidden: int = 512  # LSTM cell width
    projection: int = 256  # each layer's output width (nn.LSTM proj_size); token encoders output this too
    dropout: float = 0.1
    softmax: SoftmaxKind = "adaptive"
    adaptive_cutoffs: tuple[float, ...] = (0.125, 0.5)  # fractions of the vocabulary
    adaptive_div_value: float = 4.0
    max_pieces: int = 128  # longest training sequence; longer text is split into windows
    pieces: Optional[int] = None  # actual vocabulary size, filled in once the tokenizer is trained
    chars: Optional[int] = None  # char-CNN symbol count, filled in once the tokenizer is trained

    def __post_init__(self):
        _check_choice("input", self.input, ("char-cnn", "subword"))
        _check_choice("char_mode", self.char_mode, ("bytes", "chars", "jamo"))
        _check_choice("softmax", self.softmax, ("adaptive", "full"))
        for name in ("vocab_size", "char_dim", "highway_layers", "num_layers", "hidden", "projection", "max_pieces"):
            _check_positive(name, getattr(self, name), allow_zero=name == "highway_layers")
        if self.vocab_size < 16:
            raise ConfigError(f"vocab_size must be at least 16, got {self.vocab_size}")
        if self.max_chars < 4:
            raise ConfigError(f"max_chars must be at least 4, got {self.max_chars}")
        if not self.filters or any(w < 1 or n < 1 for w, n in self.filters):
            raise ConfigError(f"filters must be non-empty (width, count) pairs >= 1, got {self.filters!r}")
        if self.projection > self.hidden:
            raise ConfigError(f"projection ({self.projection}) must not exceed hidden ({self.hidden})")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if list(self.adaptive_cutoffs) != sorted(self.adaptive_cutoffs) or not all(0 < c < 1 for c in self.adaptive_cutoffs):
            raise ConfigError(f"adaptive_cutoffs must be increasing fractions in (0, 1), got {self.adaptive_cutoffs!r}")
        smallest = self.adaptive_div_value ** len(self.adaptive_cutoffs)
        if self.softmax == "adaptive" and int(self.projection // smallest) < 1:
            # the adaptive softmax's last cluster reads projection // div ** clusters inputs: zero would leave
            # its pieces predicted from a bias alone
            raise ConfigError(f"projection {self.projection} is too small for the adaptive softmax's "
                              f"{len(self.adaptive_cutoffs)} clusters (div value {self.adaptive_div_value:g}): "
                              f"use a projection of at least {int(smallest)}, or --softmax full")

    @property
    def num_pieces(self) -> int:
        """The softmax size: the trained vocabulary if known, else the requested one."""
        return self.pieces if self.pieces is not None else self.vocab_size


@dataclass(frozen=True)
class TrainConfig:
    """How a run trains; stored beside LMConfig so a run can be resumed and reproduced."""

    optimizer: Literal["adam", "adagrad"] = "adam"
    lr: float = 2e-3
    warmup_steps: int = 200
    min_lr_ratio: float = 0.1  # with max_steps, lr decays linearly to lr * min_lr_ratio
    clip_norm: float = 1.0
    batch_tokens: int = 2048  # pieces per batch (padding included)
    bucket_batches: int = 50  # batches read ahead and bucketed by length
    max_steps: Optional[int] = None
    max_seconds: Optional[float] = None
    epochs: Optional[float] = None
    eval_every: int = 500
    checkpoint_every: int = 500
    log_every: int = 50
    seed: int = 1234
    skip_nonfinite: bool = False
    # subword regularization (Kudo, 2018): training batches take a segmentation sampled from the unigram
    # tokenizer's lattice with smoothing alpha (sentencepiece's; lower: more varied), not the best one; 0: off.
    # Held-out scores and embeddings always use the best segmentation. A resumed run draws other segmentations
    # than an unbroken one would (sentencepiece's sampling is not reproducible across processes).
    subword_sampling: float = 0.0
    # bf16: the forward pass under torch.autocast; auto: bf16 where the CPU has native bf16 or on a GPU, else
    # float32 (contextemb.cpu_features), decided afresh by every invocation, so a run can move between machines
    precision: Literal["auto", "float32", "bf16"] = "auto"
    valid_lines: int = 2000  # held-out lines scored at each evaluation; `contextemb perplexity` scores all
    init_from: Optional[str] = None  # the model (packaged name or directory) whose weights a new run started from
    tokenizer_from: Optional[str] = None  # the sentencepiece model a new run took instead of training its own

    def __post_init__(self):
        _check_choice("optimizer", self.optimizer, ("adam", "adagrad"))
        _check_choice("precision", self.precision, ("auto", "float32", "bf16"))
        for name in ("lr", "batch_tokens", "bucket_batches", "eval_every", "checkpoint_every", "log_every", "valid_lines",
                     "max_steps", "max_seconds", "epochs"):
            _check_positive(name, getattr(self, name))
        _check_positive("warmup_steps", self.warmup_steps, allow_zero=True)
        _check_positive("clip_norm", self.clip_norm)
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if not 0.0 <= self.subword_sampling <= 1.0:
            raise ConfigError(f"subword_sampling must be in [0, 1] (0: off), got {self.subword_sampling}")


@dataclass(frozen=True)
class ModelConfig:
    """Everything config.json holds."""

    lm: LMConfig = field(default_factory=LMConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_json(self) -> str:
        payload = {"format_version": FORMAT_VERSION, "lm": dataclasses.asdict(self.lm),
                   "train": dataclasses.asdict(self.train)}
        return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "config.json") -> "ModelConfig":
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{source} is not valid JSON ({error})") from None
        if not isinstance(payload, dict):
            raise ConfigError(f"{source} must hold a JSON object")
        version = payload.get("format_version")
        if version != FORMAT_VERSION:
            raise ConfigError(f"{source} has format_version {version!r}; this contextemb reads version {FORMAT_VERSION}")
        unknown = set(payload) - {"format_version", "lm", "train"}
        if unknown:
            raise ConfigError(f"{source} has unknown keys: {', '.join(sorted(unknown))}")
        lm = payload.get("lm", {})
        if isinstance(lm, dict) and "input" not in lm:  # written when char-cnn was the default
            lm = {**lm, "input": "char-cnn"}
        return cls(lm=_from_dict(LMConfig, lm, source),
                   train=_from_dict(TrainConfig, payload.get("train", {}), source))


def _from_dict(kind, values: dict, source: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: {kind.__name__} must be a JSON object")
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"{source}: unknown {kind.__name__} keys: {', '.join(sorted(unknown))}")
    values = dict(values)
    # JSON has no tuples: restore the nested tuples the dataclass declares
    if "filters" in values:
        values["filters"] = tuple(tuple(pair) for pair in values["filters"])
    if "adaptive_cutoffs" in values:
        values["adaptive_cutoffs"] = tuple(values["adaptive_cutoffs"])
    try:
        return kind(**values)
    except TypeError as error:
        raise ConfigError(f"{source}: {error}") from None


def read_config(path: Path) -> ModelConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} not found: a model directory needs a config.json")
    return ModelConfig.from_json(path.read_text(encoding="utf-8"), source=str(path))
