"""Held-out perplexity per piece and bits per character, per direction."""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import torch

from contextemb.lm import LanguageModel
from contextemb.model_dir import load_model_dir
from contextemb.pretrain.data import Batch, evaluation_batches


class HeldOutScore(NamedTuple):
    nll: float  # summed negative log-likelihood, nats
    pieces: int  # target pieces scored (</s> or <s> included)
    characters: int  # characters of the text, one per line end included

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll / max(self.pieces, 1))

    @property
    def bits_per_char(self) -> float:
        """Comparable across tokenizers: the same text costs the same characters whatever the pieces."""
        return self.nll / math.log(2) / max(self.characters, 1)


def score_batches(model: LanguageModel, batches: Sequence[Batch]) -> HeldOutScore:
    """Sum the model's loss over held-out batches, in eval mode (no dropout), restoring the mode after."""
    was_training = model.training
    model.eval()
    nll, pieces, characters = 0.0, 0, 0
    device = next(model.parameters()).device
    with torch.inference_mode():
        for batch in batches:
            loss = model(batch.piece_ids.to(device), batch.targets.to(device))
            nll += float(loss.nll_sum)
            pieces += loss.count
            characters += batch.num_chars
    model.train(was_training)
    return HeldOutScore(nll, pieces, characters)


class DirectionPerplexity(NamedTuple):
    direction: str
    score: HeldOutScore

    def to_dict(self) -> dict:
        return {"direction": self.direction, "pieces": self.score.pieces, "characters": self.score.characters,
                "nll": round(self.score.nll, 4), "perplexity": round(self.score.perplexity, 4),
                "bits_per_char": round(self.score.bits_per_char, 4)}


def perplexity(model_dir: Path, text_file: Path, directions: Sequence[str] = ("forward", "backward"),
               batch_tokens: int = 4096, max_lines: Optional[int] = None) -> list[DirectionPerplexity]:
    """Perplexity per piece and bits per character of each direction's model on a text file (one text per line)."""
    loaded = load_model_dir(model_dir, directions)
    results = []
    for direction, model in loaded.models.items():
        batches = evaluation_batches(text_file, loaded.tokenizer, direction, max_pieces=loaded.config.lm.max_pieces,
                                     batch_tokens=batch_tokens, max_lines=max_lines)
        results.append(DirectionPerplexity(direction, score_batches(model, batches)))
    return results
