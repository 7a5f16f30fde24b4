"""Sampling text from the forward language model, as a char-RNN demo does."""

from __future__ import annotations

from typing import Optional

import torch

from .errors import ConfigError
from .lm import LanguageModel
from .tokenization import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer


def sample_text(model: LanguageModel, tokenizer: Tokenizer, prompt: str = "", *, max_pieces: int = 60,
                temperature: float = 1.0, seed: Optional[int] = None) -> str:
    """Continue `prompt` piece by piece until </s> or max_pieces; returns prompt and continuation decoded.

    temperature < 1 sharpens the distribution, > 1 flattens it. <pad>, <s> and <unk> are never drawn.
    """
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    if max_pieces < 1:
        raise ConfigError(f"max_pieces must be >= 1, got {max_pieces}")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    prompt_ids = tokenizer.encode([prompt])[0] if prompt else []
    model.eval()
    new_ids: list[int] = []
    with torch.inference_mode():
        state = None
        for piece_id in [BOS_ID] + prompt_ids:
            log_probs, state = model.step(torch.tensor([piece_id]), state)
        for _ in range(max_pieces):
            logits = log_probs[0] / temperature
            logits[[PAD_ID, BOS_ID, UNK_ID]] = float("-inf")
            piece_id = int(torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator))
            if piece_id == EOS_ID:
                break
            new_ids.append(piece_id)
            log_probs, state = model.step(torch.tensor([piece_id]), state)
    return tokenizer.decode(prompt_ids + new_ids)
