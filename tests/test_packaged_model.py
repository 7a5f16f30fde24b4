"""The packaged Korean model loads by name from the installed package, with no download."""

from __future__ import annotations

import numpy as np
import pytest

import contextemb


@pytest.fixture(scope="module")
def packaged():
    if "ko-nsmc-small" not in contextemb.list_models():
        pytest.fail("ko-nsmc-small is not packaged under contextemb/models/")
    return contextemb.load("ko-nsmc-small", threads=1, precision="float32")  # the documented figures


def test_listed_and_within_size(packaged):
    from contextemb.packaged import packaged_models_dir

    directory = packaged_models_dir() / "ko-nsmc-small"
    size = sum(path.stat().st_size for path in directory.iterdir() if path.is_file())
    assert size <= 25 * 1024 * 1024
    assert not (directory / "checkpoints").exists()


def test_embeds_the_readme_example(packaged):
    out = packaged.embed(["한화, 악몽같은 연패 언제 탈출하나", "삼성, 사상 첫 통합우승 4연패"])
    assert out[0].words == ["한화,", "악몽같은", "연패", "언제", "탈출하나"]
    assert out[0].vectors.shape == (packaged.num_layers, 5, packaged.dim)
    span = packaged.embed_span("삼성, 사상 첫 통합우승 4연패", 15, 17)
    assert span.shape == (packaged.num_layers, packaged.dim) and np.isfinite(span).all()


def test_models_command_lists_it(run_cli):
    result = run_cli("models")
    assert result.exit_code == 0 and "ko-nsmc-small" in result.stdout
