"""The char-CNN's shortcuts are exact: distinct pieces only, rows cut to the batch's longest piece, the cache."""

from __future__ import annotations

import torch

import contextemb
from contextemb.encoders import CharCNN


def packaged_char_cnn() -> CharCNN:
    encoder = contextemb.load("ko-nsmc-small", threads=1).bilm.forward_lm.encoder
    assert isinstance(encoder, CharCNN)
    return encoder


def test_cut_rows_give_the_full_width_output():
    encoder = packaged_char_cnn()
    vocab = encoder.char_table.shape[0]
    generator = torch.Generator().manual_seed(0)
    longest = int(encoder.char_lengths.argmax())
    shortest = int(encoder.char_lengths[1:].argmin()) + 1
    batches = [torch.randperm(vocab, generator=generator)[:size] for size in (1, 7, 300)]
    batches += [torch.tensor([shortest]), torch.tensor([shortest, longest]), torch.arange(vocab)]
    cut = [int(encoder.char_lengths[ids].max()) + encoder.widest_filter < encoder.char_table.shape[1] for ids in batches]
    assert any(cut) and not all(cut)  # both cases are exercised
    with torch.no_grad():
        for ids in batches:
            torch.testing.assert_close(encoder.encode_pieces(ids), encoder.encode_pieces(ids, trim=False),
                                       atol=1e-5, rtol=1e-5)


def test_distinct_pieces_and_cache_match_per_position_encoding():
    encoder = packaged_char_cnn()
    piece_ids = torch.tensor([[5, 9, 5, 0], [9, 9, 123, 0]])
    per_position = encoder.encode_pieces(piece_ids.flatten(), trim=False).view(2, 4, -1)
    with torch.no_grad():
        torch.testing.assert_close(encoder(piece_ids), per_position.detach(), atol=1e-5, rtol=1e-5)  # the cache
    encoder.cache = None
    with torch.enable_grad():
        torch.testing.assert_close(encoder(piece_ids), per_position, atol=1e-5, rtol=1e-5)  # distinct + gather


def test_length_groups_give_the_same_output_and_gradients():
    encoder = packaged_char_cnn()
    ids = torch.randperm(encoder.char_table.shape[0], generator=torch.Generator().manual_seed(1))[:400]
    results = []
    for by_length in (False, True):
        encoder.zero_grad()
        with torch.enable_grad():
            output = encoder.encode_pieces(ids, by_length=by_length)
            output.square().sum().backward()
        results.append((output.detach(), [p.grad.clone() for p in encoder.parameters()]))
    (one, one_grads), (grouped, grouped_grads) = results
    torch.testing.assert_close(grouped, one, atol=1e-5, rtol=1e-5)
    for a, b in zip(grouped_grads, one_grads):  # sums in another order: float32 rounding of gradients ~1e4
        torch.testing.assert_close(a, b, atol=1e-6 * float(b.abs().max()), rtol=0)
    single = torch.tensor([int(encoder.char_lengths.argmax())])
    torch.testing.assert_close(encoder.encode_pieces(single, by_length=True), encoder.encode_pieces(single))
