"""Sampling: reading a text piece by piece with `step` (what `sample` does) gives what `layer_states` gives on the
whole text at once, so the sampler carries the LSTM state correctly; and `contextemb sample` prints those samples."""

from __future__ import annotations

import pytest
import torch

from contextemb.lm import LanguageModel
from contextemb.model_dir import load_model_dir
from contextemb.sampling import sample_text
from contextemb.tokenization import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer

TEXTS = ["삼성, 사상 첫 통합우승 4연패를 달성했다", "The bank raised its rates.", "이 영화 최고 🙂🎬 진짜 강추 " * 4]


@pytest.fixture(scope="module")
def forward_lm(tiny_model_dir) -> tuple[LanguageModel, Tokenizer]:
    loaded = load_model_dir(tiny_model_dir, ("forward",))
    return loaded.models["forward"].eval(), loaded.tokenizer


def stepped_and_whole(model: LanguageModel, piece_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-piece log-probabilities at every position, (seq, vocab) each: stepped one piece at a time, and from
    the top layer of `layer_states` over the whole sequence."""
    with torch.inference_mode():
        whole = model.log_probs(model.layer_states(torch.tensor([piece_ids]))[-1][0])
        state, stepped = None, []
        for piece_id in piece_ids:
            log_probs, state = model.step(torch.tensor([piece_id]), state)
            stepped.append(log_probs[0])
    return torch.stack(stepped), whole


# Exact equality is not reachable: the whole sequence runs each input projection as one (seq x dim) matrix
# product and the char-CNN over a batch of distinct pieces, stepping runs them on one row, and the BLAS kernels
# sum those products in a different order (measured on the tiny model: 3.8e-6 at most in float32, 7e-15 in
# float64, for log-probabilities up to 18 in size). In float64 that reassociation error is ~1e-14, so the
# 1e-10 bar leaves no room for a real difference (a lost state, a missing residual, a layer read twice); the
# float32 bar is the one a user's model runs at, at about 5x the measured difference.
@pytest.mark.parametrize("dtype, atol, rtol", [(torch.float64, 1e-10, 0.0), (torch.float32, 2e-5, 1e-6)])
def test_stepping_equals_the_top_layer_of_layer_states(forward_lm, dtype, atol, rtol):
    model, tokenizer = forward_lm
    model = model.to(dtype)
    try:
        for text in TEXTS:
            piece_ids = [BOS_ID] + tokenizer.encode([text])[0] + [EOS_ID]
            stepped, whole = stepped_and_whole(model, piece_ids)
            assert stepped.shape == whole.shape == (len(piece_ids), tokenizer.vocab_size)
            torch.testing.assert_close(stepped, whole, atol=atol, rtol=rtol)
    finally:
        model.float()


def rereading_sampler(model: LanguageModel, tokenizer: Tokenizer, prompt: str, max_pieces: int, temperature: float,
                      seed: int) -> str:
    """sample_text's draws, but each next piece from `layer_states` over everything so far (no carried state)."""
    generator = torch.Generator().manual_seed(seed)
    prompt_ids = tokenizer.encode([prompt])[0]
    piece_ids = [BOS_ID] + prompt_ids
    with torch.inference_mode():
        for _ in range(max_pieces):
            top = model.layer_states(torch.tensor([piece_ids]))[-1][0, -1:]  # (1, projection)
            logits = model.log_probs(top)[0] / temperature
            logits[[PAD_ID, BOS_ID, UNK_ID]] = float("-inf")
            piece_id = int(torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator))
            if piece_id == EOS_ID:
                break
            piece_ids.append(piece_id)
    return tokenizer.decode(piece_ids[1:])


@pytest.mark.parametrize("prompt, temperature, seed", [("영화가", 1.0, 1), ("The bank", 0.8, 2), ("", 1.5, 3)])
def test_sample_text_draws_what_rereading_the_whole_text_draws(forward_lm, prompt, temperature, seed):
    """In float64 the two paths agree to ~1e-14 (see above), far below any gap between cumulative probabilities
    that a uniform draw could fall into, so the same seed must give the very same text."""
    model, tokenizer = forward_lm
    model = model.double()
    try:
        sampled = sample_text(model, tokenizer, prompt, max_pieces=25, temperature=temperature, seed=seed)
        assert sampled == rereading_sampler(model, tokenizer, prompt, 25, temperature, seed)
    finally:
        model.float()
    assert sampled.startswith(" ".join(prompt.split()))
    assert len(tokenizer.encode([sampled])[0]) > len(tokenizer.encode([prompt])[0])  # something was added


def test_near_zero_temperature_is_greedy(forward_lm):
    model, tokenizer = forward_lm
    piece_ids = [BOS_ID] + tokenizer.encode(["영화"])[0]
    with torch.inference_mode():
        for _ in range(8):
            log_probs = model.log_probs(model.layer_states(torch.tensor([piece_ids]))[-1][0, -1:])[0]
            log_probs[[PAD_ID, BOS_ID, UNK_ID]] = float("-inf")
            best = int(log_probs.argmax())
            if best == EOS_ID:
                break
            piece_ids.append(best)
    greedy = tokenizer.decode(piece_ids[1:])
    for seed in (0, 1, 2):
        assert sample_text(model, tokenizer, "영화", max_pieces=8, temperature=1e-4, seed=seed) == greedy


def test_sample_command_prints_the_library_samples(run_cli, tiny_model_dir, forward_lm):
    model, tokenizer = forward_lm
    result = run_cli("sample", tiny_model_dir, "--prompt", "영화가", "--seed", "5", "-n", "3", "--max-pieces", "12",
                     "--temperature", "1.0")
    assert result.exit_code == 0, result.stderr
    expected = [sample_text(model, tokenizer, "영화가", max_pieces=12, temperature=1.0, seed=5 + i) for i in range(3)]
    assert result.stdout.splitlines() == expected  # sample i uses seed + i
    assert len(set(expected)) > 1  # different seeds, different samples


@pytest.mark.parametrize("option, value", [("--temperature", "0"), ("--max-pieces", "0"), ("-n", "-1")])
def test_sample_command_refuses_bad_numbers(run_cli, tiny_model_dir, option, value):
    result = run_cli("sample", tiny_model_dir, option, value)
    assert result.exit_code == 2 and "Traceback" not in result.stderr
