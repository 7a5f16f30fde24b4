"""Bad corpora and arguments: each is handled, or refused with one line on stderr and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata

import pytest

from contextemb.tokenization import Tokenizer

TINY = ["--vocab-size", "800", "--layers", "1", "--hidden", "32", "--proj", "16", "--direction", "forward",
        "--max-steps", "3", "--batch-tokens", "256", "--no-progress", "--threads", "1"]


def assert_refused(result, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip() and " INFO " not in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_corpus(run_cli, tmp_path):
    assert_refused(run_cli("pretrain", tmp_path / "nope.txt", "--out", tmp_path / "m", *TINY), "does not exist")


def test_directory_without_text_files_as_corpus(run_cli, tmp_path):
    """A directory is read as its .txt and .txt.gz files; one with none is refused, naming what it looked for."""
    (tmp_path / "notes.md").write_text("not a corpus file\n")
    assert_refused(run_cli("pretrain", tmp_path, "--out", tmp_path / "m", *TINY), "holds no .txt or .txt.gz files")


@pytest.mark.parametrize("content", [b"", b"\n\n   \n\t\n\r\n"], ids=["empty", "blank-lines"])
def test_corpus_without_text(run_cli, tmp_path, content):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(content)
    assert_refused(run_cli("pretrain", corpus, "--out", tmp_path / "m", *TINY), "no text")


def test_out_is_a_file(run_cli, tmp_path, small_corpus):
    (tmp_path / "m").write_text("x")
    assert_refused(run_cli("pretrain", small_corpus, "--out", tmp_path / "m", *TINY), "is a file")


def test_resume_without_a_run(run_cli, tmp_path, small_corpus):
    assert_refused(run_cli("pretrain", small_corpus, "--out", tmp_path / "m", "--resume", *TINY), "--resume")


def test_missing_held_out_file(run_cli, tmp_path, small_corpus):
    assert_refused(run_cli("pretrain", small_corpus, "--out", tmp_path / "m", "--valid", tmp_path / "v.txt", *TINY),
                   "held-out file", "does not exist")


def test_perplexity_of_a_missing_model(run_cli, tmp_path, demo_heldout):
    assert_refused(run_cli("perplexity", tmp_path / "nothing", demo_heldout),
                   "neither a model directory nor a packaged model")


def test_model_commands_take_a_packaged_name(run_cli, tmp_path, demo_heldout):
    # README: a packaged model's name works wherever a command takes MODEL (perplexity, sample, export too)
    result = run_cli("perplexity", "ko-nsmc-small", demo_heldout, "--max-lines", "3", "--json")
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["direction"] for line in result.stdout.splitlines()] == ["forward", "backward"]
    result = run_cli("sample", "ko-nsmc-small", "--prompt", "영화가", "--seed", "1", "--max-pieces", "5")
    assert result.exit_code == 0 and result.stdout.startswith("영화가"), result.stdout + result.stderr
    result = run_cli("export", "ko-nsmc-small", tmp_path / "copy")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "copy" / "forward.safetensors").stat().st_size > 1_000_000


def test_bad_numbers(run_cli, tmp_path, small_corpus):
    result = run_cli("pretrain", small_corpus, "--out", tmp_path / "m", "--max-steps", "0")
    assert result.exit_code == 2 and "Traceback" not in result.stderr


def test_a_projection_too_small_for_the_adaptive_softmax_is_refused_before_training(run_cli, tmp_path, small_corpus):
    """Its last cluster would read projection // 16 = 0 inputs and predict its pieces from a bias alone."""
    result = run_cli("pretrain", small_corpus, "--out", tmp_path / "m", "--hidden", "32", "--proj", "12")
    assert result.exit_code != 0 and "too small for the adaptive softmax" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "m").exists()
    accepted = run_cli("pretrain", small_corpus, "--out", tmp_path / "full", "--hidden", "32", "--proj", "12",
                       "--softmax", "full", "--vocab-size", "800", "--max-steps", "2", "--no-progress")
    assert accepted.exit_code == 0, accepted.output


def _dirty_corpus(small_corpus, kind: str) -> bytes:
    lines = small_corpus.read_bytes().splitlines()
    if kind == "invalid-utf8":
        lines[::7] = [line + b" \xff\xfe\xc3(" for line in lines[::7]]
    elif kind == "nul-bytes":
        lines[::5] = [line.replace(b" ", b"\x00 ", 1) for line in lines[::5]]
    elif kind == "crlf-bom":
        return b"\xef\xbb\xbf" + b"\r\n".join(lines) + b"\r\n"
    elif kind == "long-line":  # one 10 MB line (cut at spaces into parts; never held as one sequence)
        text = b" ".join(lines)
        lines = lines + [(text * (10_000_000 // len(text) + 1))[:10_000_000].rsplit(b" ", 1)[0]]
    elif kind == "scripts":  # decomposed jamo (NFD), emoji, right-to-left Arabic and Hebrew, mixed scripts
        lines = [unicodedata.normalize("NFD", line.decode()).encode() for line in lines]
        lines += ["مرحبا بالعالم 🙂 שלום עולם 영화 good 映画".encode()] * 3
    return b"\n".join(lines) + b"\n"


@pytest.mark.parametrize("kind", ["invalid-utf8", "nul-bytes", "crlf-bom", "long-line", "scripts"])
def test_dirty_corpus_is_cleaned_and_trains(run_cli, tmp_path, small_corpus, kind):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(_dirty_corpus(small_corpus, kind))
    result = run_cli("pretrain", corpus, "--out", tmp_path / "m", *TINY)
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    pieces = Tokenizer.from_file(tmp_path / "m" / "tokenizer.model").pieces
    assert not any(ch in piece for piece in pieces for ch in ("\ufeff", "\r", "\x00"))
    if kind == "invalid-utf8":
        assert "invalid UTF-8" in result.stderr
    if kind == "nul-bytes":
        assert "NUL" in result.stderr
    if kind == "scripts":  # NFD jamo were composed before the tokenizer saw them
        assert any("영" in piece for piece in pieces)  # NFD would spell it as three jamo


@pytest.mark.slow
def test_console_script_exits_2_without_traceback(tmp_path):
    """The installed entry point, in a real process: one line, exit 2."""
    process = subprocess.run([sys.executable, "-m", "contextemb.cli.main", "pretrain", str(tmp_path / "x.txt"),
                              "--out", str(tmp_path / "m")], capture_output=True, text=True, timeout=120)
    assert process.returncode == 2
    assert process.stderr.strip().count("\n") == 0 and "does not exist" in process.stderr


def test_an_output_path_that_is_a_directory(run_cli, tmp_path, tiny_model_dir, demo_heldout):
    """Every writer goes through atomic_write, which refuses a directory in one line (it was a traceback)."""
    assert_refused(run_cli("probe", tiny_model_dir, "--word", "연패", "--plot", tmp_path), "is a directory")
    assert_refused(run_cli("embed", tiny_model_dir, demo_heldout, tmp_path, "--precision", "float32", "--force",
                           "--no-progress"), "is a directory")
