"""Lower precision at inference: the unrolled LSTM is exact in float32; int8 and bf16 keep the probe results."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import contextemb
from contextemb.evaluation.probe import run_probes, summarise
from contextemb.evaluation.probe_sets import bundled_probe_file, read_probes
from contextemb.quantization import UnrolledLSTM


def test_unrolled_lstm_matches_nn_lstm_in_float32():
    torch.manual_seed(0)
    lstm = nn.LSTM(12, 20, proj_size=7, batch_first=True).eval()
    unrolled = UnrolledLSTM.from_lstm(lstm)
    inputs = torch.randn(3, 9, 12)
    state = (torch.randn(1, 3, 7), torch.randn(1, 3, 20))
    with torch.no_grad():
        for start in (None, state):
            expected, (h, c) = lstm(inputs, start)
            got, (h2, c2) = unrolled(inputs, start)
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(h2, h, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(c2, c, atol=1e-5, rtol=1e-5)


def test_unrolled_lstm_refuses_what_it_cannot_rewrite():
    with pytest.raises(ValueError, match="proj_size"):
        UnrolledLSTM.from_lstm(nn.LSTM(4, 8, batch_first=True))


@pytest.mark.parametrize("options", [{"quantize": True}, {"precision": "bf16"}])
def test_lower_precision_stays_close_to_float(tiny_model_dir, options):
    texts = ["삼성, 사상 첫 통합우승 4연패", "The bank raised its rates.", "", "배가 아파요 🙂"]
    exact = contextemb.load(tiny_model_dir, threads=1, precision="float32").embed(texts)
    fast_embedder = contextemb.load(tiny_model_dir, threads=1, **options)
    if options.get("quantize"):
        assert not any(isinstance(m, nn.LSTM) for m in fast_embedder.bilm.modules())
    else:
        assert all(p.dtype == torch.bfloat16 for p in fast_embedder.bilm.forward_lm.lstms.parameters())
    approx = fast_embedder.embed(texts)
    for a, b in zip(exact, approx):
        assert a.words == b.words and a.vectors.shape == b.vectors.shape
        assert b.vectors.dtype == np.float32
        if a.vectors.size:
            cosines = (a.vectors * b.vectors).sum(-1) / (
                np.linalg.norm(a.vectors, axis=-1) * np.linalg.norm(b.vectors, axis=-1))
            assert cosines.min() > 0.95, cosines.min()


def test_quantize_refuses_a_gpu_device_and_bf16(tiny_model_dir):
    with pytest.raises(ValueError, match="CPU only"):
        contextemb.load(tiny_model_dir, device="cuda", quantize=True)
    with pytest.raises(ValueError, match="exclude each other"):
        contextemb.load(tiny_model_dir, quantize=True, precision="bf16")
    with pytest.raises(ValueError, match="precision must be"):
        contextemb.load(tiny_model_dir, precision="fp8")


def test_lower_precision_packaged_model_keeps_probe_accuracy():
    """Issue 5: the bundled Korean probe set's 1-NN accuracy moves by at most 0.02 per layer and for the mix."""
    probes = read_probes(bundled_probe_file("ko"))
    accuracy = {}
    for name, options in (("float32", {"precision": "float32"}), ("int8", {"quantize": True}), ("bf16", {"precision": "bf16"})):
        rows, _ = run_probes(contextemb.load("ko-nsmc-small", **options), probes, samples=10)
        accuracy[name] = {row: values["accuracy"] for row, values in summarise(rows).items()}
    for name in ("int8", "bf16"):
        assert accuracy[name].keys() == accuracy["float32"].keys()
        for row in accuracy["float32"]:
            assert abs(accuracy[name][row] - accuracy["float32"][row]) <= 0.02, (name, row, accuracy)
