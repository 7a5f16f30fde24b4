"""The hand-written projected LSTM gives nn.LSTM's outputs and gradients, on nn.LSTM's own parameters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from contextemb import onednn
from contextemb.config import LMConfig
from contextemb.lm import LanguageModel
from contextemb.projected_lstm import _ProjectedLSTMFunction, projected_lstm


@pytest.fixture(params=[True, False], ids=["onednn", "torch.mm"])
def matmul_backend(request, monkeypatch):
    """Both ways of multiplying: oneDNN (where torch has it) and torch.mm."""
    monkeypatch.setattr(onednn, "ENABLED", request.param)
    return request.param


def _outputs_and_gradients(run, lstm: nn.LSTM, inputs, state, weights):
    """run's outputs and the gradients of a weighted sum of them w.r.t. inputs, state and lstm's parameters."""
    outputs, (h, c) = run(inputs, state)
    out_weight, h_weight, c_weight = weights
    loss = (outputs * out_weight).sum() + (h * h_weight).sum() + (c * c_weight).sum()
    leaves = [inputs, *lstm.parameters(), *(state or ())]
    return (outputs, h, c), torch.autograd.grad(loss, leaves)


@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])
def test_outputs_and_gradients_equal_nn_lstm_in_float32(matmul_backend, with_state):
    torch.manual_seed(0)
    lstm = nn.LSTM(24, 40, proj_size=16, batch_first=True)
    inputs = torch.randn(5, 7, 24, requires_grad=True)  # (batch, seq, input)
    state = (torch.randn(1, 5, 16, requires_grad=True), torch.randn(1, 5, 40, requires_grad=True)) if with_state \
        else None
    weights = (torch.randn(5, 7, 16), torch.randn(1, 5, 16), torch.randn(1, 5, 40))
    expected, expected_grads = _outputs_and_gradients(lstm, lstm, inputs, state, weights)
    got, got_grads = _outputs_and_gradients(lambda x, s: projected_lstm(lstm, x, s), lstm, inputs, state, weights)
    assert len(got_grads) == len(expected_grads) == (8 if with_state else 6)
    for value, reference in zip([*got, *got_grads], [*expected, *expected_grads]):
        assert value.shape == reference.shape
        torch.testing.assert_close(value, reference, atol=1e-5, rtol=1e-5)


def test_only_the_outputs_used_gives_nn_lstm_gradients():
    """Gradients that reach the outputs alone (training: the final state is dropped)."""
    torch.manual_seed(1)
    lstm = nn.LSTM(8, 12, proj_size=6, batch_first=True)
    inputs = torch.randn(3, 4, 8, requires_grad=True)
    expected = torch.autograd.grad(lstm(inputs)[0].square().sum(), [inputs, *lstm.parameters()])
    got = torch.autograd.grad(projected_lstm(lstm, inputs)[0].square().sum(), [inputs, *lstm.parameters()])
    for value, reference in zip(got, expected):
        torch.testing.assert_close(value, reference, atol=1e-5, rtol=1e-5)


def test_float64_gradcheck():
    """Every input of the autograd function, numerically (time-major inputs, as projected_lstm passes them)."""
    torch.manual_seed(2)
    lstm = nn.LSTM(3, 4, proj_size=2, batch_first=True).double()
    inputs = torch.randn(3, 2, 3, dtype=torch.float64, requires_grad=True)  # (seq, batch, input)
    h0 = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    weights = [lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0, lstm.weight_hr_l0]
    assert torch.autograd.gradcheck(_ProjectedLSTMFunction.apply, (inputs, h0, c0, *weights))


def test_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="proj_size"):
        projected_lstm(nn.LSTM(4, 8, batch_first=True), torch.randn(1, 2, 4))
    with pytest.raises(ValueError, match="proj_size"):
        projected_lstm(nn.LSTM(4, 8, proj_size=2, num_layers=2, batch_first=True), torch.randn(1, 2, 4))


def test_onednn_product_equals_torch_mm():
    torch.manual_seed(3)
    matrix, weight, bias = torch.randn(6, 10), torch.randn(14, 10), torch.randn(14)
    expected = matrix @ weight.t()
    torch.testing.assert_close(onednn.times_transposed(matrix, onednn.prepare(weight, 6)), expected)
    torch.testing.assert_close(onednn.times_transposed(matrix, weight, bias), expected + bias)
    torch.testing.assert_close(onednn.times_transposed(matrix.t().contiguous().t(), weight.t().contiguous().t()),
                               expected)


def _tiny_language_model() -> LanguageModel:
    """A char-CNN LM with an adaptive softmax, small enough for a test, and a random character table."""
    torch.manual_seed(4)
    config = LMConfig(input="char-cnn", vocab_size=60, pieces=60, chars=20, max_chars=8, char_dim=4,
                      filters=((1, 4), (3, 8)), highway_layers=1, hidden=24, projection=16, dropout=0.0)
    lengths = torch.randint(1, 9, (60,))
    table = torch.randint(1, 20, (60, 8)) * (torch.arange(8) < lengths[:, None])  # padding (0) at the end
    return LanguageModel(config, table).train()


def test_language_model_training_equals_torch_path():
    """Loss and every parameter's gradient, on a padded batch, with and without the fast CPU training path."""
    model = _tiny_language_model()
    piece_ids = torch.randint(1, 60, (3, 7))
    piece_ids[1, 5:] = 0  # padding at the end of shorter rows
    piece_ids[2, 3:] = 0
    targets = torch.roll(piece_ids, -1, dims=1) * (piece_ids != 0)
    results = {}
    for fast in (True, False):
        model.fast_cpu_training = fast
        assert model._fast_cpu_training() is fast
        model.zero_grad()
        loss = model(piece_ids, targets)
        loss.mean.backward()
        results[fast] = (loss.nll_sum.detach(), {name: p.grad.clone() for name, p in model.named_parameters()})
    torch.testing.assert_close(results[True][0], results[False][0], atol=1e-5, rtol=1e-5)
    assert results[True][1].keys() == results[False][1].keys()
    for name, gradient in results[True][1].items():
        torch.testing.assert_close(gradient, results[False][1][name], atol=1e-5, rtol=1e-5, msg=name)


def test_inference_keeps_torch_path():
    model = _tiny_language_model()
    with torch.no_grad():
        assert not model._fast_cpu_training()
    assert not model.to(torch.float64)._fast_cpu_training()


@pytest.mark.parametrize("bias", [True, False])
def test_onednn_linear_equals_f_linear(bias):
    torch.manual_seed(5)
    layer = nn.Linear(10, 6, bias=bias)
    inputs = torch.randn(4, 3, 10, requires_grad=True)
    expected = layer(inputs)
    expected_grads = torch.autograd.grad(expected.square().sum(), [inputs, *layer.parameters()])
    with onednn.linear_layers():
        got = layer(inputs)
    got_grads = torch.autograd.grad(got.square().sum(), [inputs, *layer.parameters()])
    assert got.grad_fn.name().startswith("_Linear") == onednn.usable(inputs)
    for value, reference in zip([got, *got_grads], [expected, *expected_grads]):
        torch.testing.assert_close(value, reference, atol=1e-5, rtol=1e-5)


def test_onednn_product_of_a_broadcast_matrix():
    """A stride-0 operand (the gradient of a sum) gives the right product (and is copied: see onednn)."""
    weight = torch.randn(5, 7)
    ones = torch.ones(()).expand(9, 7)
    torch.testing.assert_close(onednn.times_transposed(ones, weight), ones.contiguous() @ weight.t())
    torch.testing.assert_close(onednn.summed_outer(ones, torch.ones(9, 3)), torch.full((7, 3), 9.0))
