"""The inference LSTM (oneDNN products on packed weights) gives nn.LSTM's outputs, and sees every weight change."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from contextemb import inference_lstm as module
from contextemb import onednn
from contextemb.config import LMConfig
from contextemb.inference_lstm import inference_lstm, usable
from contextemb.lm import LanguageModel

pytestmark = pytest.mark.skipif(not onednn.present(), reason="this torch has no oneDNN linear operators (or not x86)")


def _lstm(seed: int = 0) -> nn.LSTM:
    torch.manual_seed(seed)
    return nn.LSTM(24, 40, proj_size=16, batch_first=True).eval()


@pytest.mark.parametrize("batch,steps", [(1, 1), (5, 7), (33, 3)])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])
def test_float32_outputs_and_last_state_equal_nn_lstm(batch, steps, with_state):
    lstm = _lstm()
    inputs = torch.randn(batch, steps, 24)
    state = (torch.randn(1, batch, 16), torch.randn(1, batch, 40)) if with_state else None
    with torch.no_grad():
        assert usable(lstm, inputs)
        expected, (expected_h, expected_c) = lstm(inputs, state)
        got, (h, c) = inference_lstm(lstm, inputs, state)
    assert got.shape == expected.shape == (batch, steps, 16)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close((h, c), (expected_h, expected_c), rtol=0, atol=1e-5)


def test_no_steps_give_no_outputs_and_the_state_it_was_given():  # nn.LSTM refuses them
    state = (torch.randn(1, 2, 16), torch.randn(1, 2, 40))
    with torch.no_grad():
        outputs, last = inference_lstm(_lstm(), torch.randn(2, 0, 24), state)
    assert outputs.shape == (2, 0, 16)
    torch.testing.assert_close(last, state)


def test_one_packing_serves_every_batch_size():
    lstm = _lstm()
    with torch.no_grad():
        for batch in (64, 1, 7, 300):
            inputs = torch.randn(batch, 4, 24)
            torch.testing.assert_close(inference_lstm(lstm, inputs)[0], lstm(inputs)[0], rtol=0, atol=1e-5)


def test_bfloat16_is_as_close_to_float32_as_nn_lstm_in_bfloat16():
    lstm = _lstm()
    inputs = torch.randn(20, 30, 24)
    with torch.no_grad():
        reference = lstm(inputs)[0]
        lstm.to(torch.bfloat16)
        torch_error = (lstm(inputs.bfloat16())[0].float() - reference).abs().max()
        assert usable(lstm, inputs.bfloat16())
        error = (inference_lstm(lstm, inputs.bfloat16())[0].float() - reference).abs().max()
    assert error < 0.02
    assert error < 3 * torch_error


def test_a_changed_weight_is_packed_again():
    lstm = _lstm()
    inputs = torch.randn(3, 5, 24)
    with torch.no_grad():
        before = inference_lstm(lstm, inputs)[0]
        lstm.weight_hh_l0.mul_(0.5)  # in place, as an optimizer step is
        after = inference_lstm(lstm, inputs)[0]
        lstm.load_state_dict(_lstm(seed=1).state_dict())
        reloaded = inference_lstm(lstm, inputs)[0]
        torch.testing.assert_close(after, _halved(_lstm())(inputs)[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(reloaded, lstm(inputs)[0], rtol=0, atol=1e-5)
    assert not torch.allclose(before, after)


def _halved(lstm: nn.LSTM) -> nn.LSTM:
    with torch.no_grad():
        lstm.weight_hh_l0.mul_(0.5)
    return lstm


def test_not_used_with_gradients_autocast_or_mismatched_dtypes(monkeypatch):
    lstm = _lstm()
    inputs = torch.randn(2, 3, 24)
    assert not usable(lstm, inputs)  # gradients on: training runs nn.LSTM or projected_lstm
    with torch.no_grad():
        assert not usable(lstm, inputs.double())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not usable(lstm, inputs)
        assert not usable(nn.LSTM(24, 40, batch_first=True), inputs)  # no projection
        monkeypatch.setattr(module, "ENABLED", False)
        assert not usable(lstm, inputs)


def test_a_language_models_states_are_the_same_with_and_without_it(monkeypatch):
    config = LMConfig(vocab_size=50, input="subword", hidden=40, projection=16, num_layers=2, dropout=0.0, pieces=50)
    torch.manual_seed(0)
    model = LanguageModel(config).eval()
    ids = torch.randint(1, 50, (4, 9))
    with torch.no_grad():
        fast = model.layer_states(ids)
        monkeypatch.setattr(module, "ENABLED", False)
        plain = model.layer_states(ids)
    for got, expected in zip(fast, plain):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
