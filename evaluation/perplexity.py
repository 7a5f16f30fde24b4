"""Held-out perplexity per piece and bits per character, per direction."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Optional, Sequence

from contextemb.config import Direction
from contextemb.heldout import HeldOutScore, evaluation_batches, score_batches
from contextemb.model_dir import load_model_dir

__all__ = ["HeldOutScore", "score_batches", "DirectionPerplexity", "perplexity"]


class DirectionPerplexity(NamedTuple):
    direction: Direction
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
