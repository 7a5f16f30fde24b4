"""`contextemb probe --plot`: a real PNG of the size the figure asks for, with drawn panels and Hangul that renders."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from contextemb.evaluation.probe_sets import bundled_probe_file

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DPI = 80  # plot_probes saves at 80 dpi; each word is a row of 3.8 in, each panel pair 2 x 4.2 in wide


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels from the PNG's IHDR chunk, which must come first."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, data[:8]
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def assert_drawn(path: Path) -> None:
    """Decoded pixels show plots, not an empty canvas: many colours, a good share of them not white."""
    import matplotlib.image

    pixels = matplotlib.image.imread(str(path))[..., :3]  # (height, width, RGB) floats in [0, 1]
    colours = np.unique((pixels * 255).round().astype(np.uint8).reshape(-1, 3), axis=0)
    not_white = (pixels < 0.95).any(axis=-1).mean()
    # measured on the 연패 plot of the tiny model: ~1,900 colours, ~0.3 of the pixels not white; an empty
    # figure has one colour, and axes with no image or points a handful
    assert len(colours) > 300, len(colours)
    assert 0.15 < not_white < 0.9, not_white


def run_probe_plot(run_cli, model, out: Path, *options: str):
    """Run `contextemb probe --plot`; returns the result and the texts of any missing-glyph warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_cli("probe", model, "--bootstrap", "10", "--plot", out, *options)
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    return result, missing


def test_probe_plot_of_one_word(run_cli, tiny_model_dir, tmp_path):
    out = tmp_path / "plots" / "연패.png"
    result, missing = run_probe_plot(run_cli, tiny_model_dir, out, "--word", "연패")
    assert result.exit_code == 0, result.stderr
    assert f"plot: {out}" in result.stdout
    assert png_size(out) == (round(2 * 4.2 * DPI), round(3.8 * DPI))  # one word: heatmap and scatter
    assert 10_000 < out.stat().st_size < 1_000_000  # measured 24 KB
    assert_drawn(out)
    assert missing == []  # 연패 and the sense names render in a Korean font, not as empty boxes
    assert not out.with_name(out.name + ".tmp").exists()  # written atomically


@pytest.fixture(scope="module")
def tiny_word2vec(tiny_model_dir, small_corpus, tmp_path_factory) -> Path:
    from contextemb.evaluation.word2vec import train_word2vec
    from contextemb.model_dir import load_model_dir

    out = tmp_path_factory.mktemp("w2v") / "w2v.bin"
    train_word2vec(small_corpus, load_model_dir(tiny_model_dir, ()).tokenizer, out, dim=16, epochs=1, min_count=1,
                   workers=1)
    return out


def test_probe_plot_of_two_words_beside_word2vec(run_cli, tiny_model_dir, tiny_word2vec, tmp_path):
    lines = bundled_probe_file("ko").read_text(encoding="utf-8").splitlines()
    probes = tmp_path / "two.tsv"
    probes.write_text("\n".join([lines[0]] + [line for line in lines[1:] if line.split("\t")[0] in ("연패", "눈")])
                      + "\n", encoding="utf-8")
    out = tmp_path / "two.png"
    result, missing = run_probe_plot(run_cli, tiny_model_dir, out, "--probes", probes, "--w2v", tiny_word2vec)
    assert result.exit_code == 0, result.stderr
    assert "word2vec" in result.stdout
    # two words, and a Word2Vec heatmap and scatter beside the layer's: 4 panels wide, 2 rows high
    assert png_size(out) == (round(4 * 4.2 * DPI), round(2 * 3.8 * DPI))
    assert 20_000 < out.stat().st_size < 2_000_000
    assert_drawn(out)
    assert missing == []

