"""The benchmark runner: the CPU line at the head of the report, the skipped paths, figures streamed to the file.

The benchmarks measure; these tests only check that a report is made the way a user needs it: the CPU's
capability first, a path the CPU cannot run natively named and skipped (not run), every figure in the results
file as soon as it is printed. The sizes are tiny, so the figures themselves mean nothing here.
"""

from __future__ import annotations

import dataclasses
import io
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks import run
from benchmarks.common import PartFailed
from benchmarks.common import run as run_command
from benchmarks.embedding import EmbedSizes
from benchmarks.memory import MemorySizes
from benchmarks.paths import runnable, skip_reason
from benchmarks.peers import PeerSizes
from benchmarks.pretraining import PretrainSizes
from benchmarks.report import Report, results_path, summary
from benchmarks.scaling import ScalingSizes
from contextemb.cpu_features import CpuFeatures

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

AVX2_ONLY = CpuFeatures(model_name="an AVX2 CPU", torch_capability="AVX2", avx2=True, avx512=False,
                        avx512_bf16=False, vnni=False, amx=False)
SAPPHIRE_RAPIDS = CpuFeatures(model_name="a CPU with AMX", torch_capability="AVX512", avx2=True, avx512=True,
                              avx512_bf16=True, vnni=True, amx=True)
NO_AVX2 = dataclasses.replace(AVX2_ONLY, avx2=False, torch_capability="DEFAULT")

TINY = run.Sizes(
    matmul_repeats=2, lstm_repeats=1, lstm_steps=1,
    pretrain=PretrainSizes(lines=2000, steps=3, log_every=1, repeats=1, flop_batches=1, timeout_s=300),
    embed=EmbedSizes(reviews=20, repeats=1, timeout_s=300),
    memory=MemorySizes(lines=2000, steps=1, repeats=1, tokenizer=False, timeout_s=300),
    scaling=ScalingSizes(lines=2000, steps=4, log_every=1, repeats=1, timeout_s=300),
    peers=PeerSizes(seconds=5, reviews=20, repeats=1, timeout_s=300))


def test_bf16_is_skipped_without_native_bf16_and_int8_without_avx2():
    assert "native bf16" in skip_reason("bf16", AVX2_ONLY)
    assert skip_reason("int8", AVX2_ONLY) is None
    assert runnable(("float32", "bf16", "int8"), AVX2_ONLY)[0] == ("float32", "int8")
    assert runnable(("float32", "bf16", "int8"), SAPPHIRE_RAPIDS) == (("float32", "bf16", "int8"), {})
    kept, skipped = runnable(("float32", "bf16", "int8"), NO_AVX2)
    assert kept == ("float32",) and set(skipped) == {"bf16", "int8"} and "AVX2" in skipped["int8"]


def test_results_are_named_by_date_and_cpu_kind_and_never_overwritten(tmp_path):
    first = results_path(AVX2_ONLY.kind(), "quick", day="2026-12-02", directory=tmp_path)
    assert first.name == "2026-12-02-avx2-quick.md"
    first.write_text("kept")
    assert results_path("avx2", "quick", day="2026-12-02", directory=tmp_path).name == "2026-12-02-avx2-quick-2.md"


def test_each_figure_is_in_the_file_as_soon_as_it_is_printed(tmp_path):
    printed = io.StringIO()
    report = Report(tmp_path / "r.md", tmp_path / "r.jsonl", stream=printed)
    report.figure("float32 matmul, GFLOP/s", summary([190.0, 200.0, 180.0]), 1)
    assert (tmp_path / "r.md").read_text() == printed.getvalue() == \
        "- float32 matmul, GFLOP/s: 190.0 (min 180.0, max 200.0, n=3)\n"
    assert '"median": 190.0' in (tmp_path / "r.jsonl").read_text()
    report.skipped("bf16 matmul", "no native bf16")
    assert (tmp_path / "r.md").read_text().endswith("- skipped: bf16 matmul — no native bf16\n")


def running(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[-1][0] != "Z"  # a zombie has stopped running


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_a_command_past_its_time_is_stopped_with_the_processes_it_started(tmp_path):
    child_pid = tmp_path / "child.pid"
    script = ("import subprocess, sys, time; "
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
              f"open({str(child_pid)!r}, 'w').write(str(child.pid)); time.sleep(60)")
    with pytest.raises(PartFailed, match="ran past 5 s and was stopped"):
        run_command([sys.executable, "-c", script], 5)
    pid = int(child_pid.read_text())
    for _ in range(50):  # the orphan is reaped by init
        if not running(pid):
            break
        time.sleep(0.1)
    assert not running(pid)


def test_the_report_starts_with_the_cpu_and_skips_what_it_cannot_run_natively(tmp_path, capsys):
    path = run.main(["--only", "matmul", "--out", str(tmp_path / "out.md")], features=AVX2_ONLY, sizes=TINY)
    text = path.read_text(encoding="utf-8")
    assert text == capsys.readouterr().out.split("\nresults: ")[0]  # printed and written alike
    lines = text.splitlines()
    assert lines[0].startswith("# contextemb benchmarks, ")
    assert lines[2] == f"- CPU: {AVX2_ONLY.summary()}"  # first thing after the title
    assert "- skipped: bf16 matmul — this CPU has no native bf16" in text
    assert re.search(r"^- float32 matmul, GFLOP/s: [\d,.]+ \(min ", text, re.M)
    assert re.search(r"^- int8 matmul, GOP/s: [\d,.]+ ", text, re.M)
    assert "bf16 matmul, GFLOP/s" not in text
    assert re.search(r"^- finished in \d+ s", text, re.M)


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "nsmc" / "corpus.txt").is_file(), reason="needs ../shared/data/nsmc")
def test_pretraining_and_embedding_parts_report_real_runs(tmp_path):
    """Real CLI runs, a few steps and 20 reviews: each part reports its figures, bf16 skipped as asked."""
    path = run.main(["--only", "pretrain,embed", "--out", str(tmp_path / "out.md")], features=AVX2_ONLY, sizes=TINY)
    text = path.read_text(encoding="utf-8")
    assert "failed" not in text, text
    assert "- skipped: pretraining in bf16 — " in text and "- skipped: embedding in bf16 — " in text
    assert re.search(r"^- pretraining, float32, run 1, pieces/s: forward [\d,]+, backward [\d,]+", text, re.M)
    assert re.search(r"^- training FLOPs per piece \(forward \+ backward, counted\), M: \d+\.\d\d$", text, re.M)
    for precision in ("float32", "int8"):
        assert re.search(rf"^- embedding, {precision}, run 1: [\d,]+ sentences/s \([\d.]+ s embedding", text, re.M)
    assert re.search(r"^- embedding, int8 speed-up over float32 \(pairwise, same repeat\): [\d.]+×", text, re.M)


def test_the_inference_lstm_table_times_both_paths_in_both_precisions():
    from benchmarks.lstm_ab import inference_times
    from contextemb import onednn

    table = inference_times(1, rows=4, steps=3, repeats=2)
    if not onednn.present():
        assert "not usable" in table
        return
    rows = [line for line in table.splitlines() if line.startswith(("| float32", "| bfloat16"))]
    assert len(rows) == 2
    for row in rows:
        nn_ms, ours_ms = (float(cell) for cell in row.split("|")[2:4])
        assert nn_ms > 0 and ours_ms > 0


def test_span_pooling_variants_agree_with_the_library_and_take_each_half_from_its_own_piece(tiny_model_dir):
    from benchmarks.span_pooling import piece_group, span_vectors
    from contextemb import load
    from contextemb.evaluation.probe_sets import Probe

    embedder = load(tiny_model_dir, precision="float32")
    texts = ["영화가 정말 재미있었다 배우들의 연기가 좋았다", "오늘은 날씨가 맑고 바람이 분다"]
    probes = [Probe("w", "s", "", text, start, end)
              for text in texts for start, end in ((0, len(text.split()[0])), (text.index(text.split()[2]), len(text)))]
    pooled, sizes = span_vectors(embedder, probes)
    library = np.stack(embedder.embed_spans([(p.text, p.start, p.end) for p in probes]), axis=1)
    np.testing.assert_allclose(pooled["mean"], library, rtol=1e-5, atol=1e-6)
    half = embedder.dim // 2
    several = [k for k, size in enumerate(sizes) if size > 1]
    assert sizes == [len(piece_group(probe, embedder.encode(probe.text))) for probe in probes]
    assert several, "no span covers several pieces: the test would not tell the poolings apart"
    for k in several:
        np.testing.assert_array_equal(pooled["directional"][:, k, :half], pooled["last"][:, k, :half])
        np.testing.assert_array_equal(pooled["directional"][:, k, half:], pooled["first"][:, k, half:])
        assert not np.allclose(pooled["first"][:, k], pooled["last"][:, k])
    # token rows: the whole whitespace token ("배우들의" for a span "배우")
    from benchmarks.span_pooling import token_group
    token_probe = Probe("w", "s", "", texts[0], texts[0].index("배우"), texts[0].index("배우") + 2)
    encoding = embedder.encode(token_probe.text)
    token = token_group(token_probe, encoding)
    assert "".join(encoding.pieces[i] for i in token).lstrip("▁") == "배우들의"
    token_pooled, _ = span_vectors(embedder, [token_probe])
    pieces = embedder.piece_vectors([encoding])[0].detach().numpy()
    np.testing.assert_allclose(token_pooled["token mean"][:, 0], pieces[:, token].mean(axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(token_pooled["token directional"][:, 0, :half], pieces[:, token[-1], :half], atol=1e-5)
    # context: the forward state of the piece before the word and the backward state of the piece after it
    for k, probe in enumerate(probes):
        encoding = embedder.encode(probe.text)
        group, pieces = piece_group(probe, encoding), embedder.piece_vectors([encoding])[0].detach().numpy()
        if group[0] > 0:
            np.testing.assert_allclose(pooled["context"][:, k, :half], pieces[:, group[0] - 1, :half], atol=1e-6)
        if group[-1] < len(encoding.piece_ids) - 1:
            np.testing.assert_allclose(pooled["context"][:, k, half:], pieces[:, group[-1] + 1, half:], atol=1e-6)
        spelled = [i for i in group if encoding.pieces[i] != "▁"] or group
        np.testing.assert_allclose(pooled["mean, no ▁"][:, k], pieces[:, spelled].mean(axis=1), atol=1e-6)


def test_segmentation_neighbours_tells_spelling_from_sense():
    """Two spellings (s1, s2) of one word, two senses (A, B): dimensions 0-1 are the spelling, 2-3 the sense,
    the spelling much the larger. The nearest neighbour then always shares the spelling and has the other sense;
    across spellings the sense decides; minus each spelling's mean, so does every neighbour."""
    from benchmarks.segmentation_neighbours import centred_by_segmentation, segmentation_neighbours

    vectors = np.array([[1, 0, 0.1, 0], [0, 1, 0.1, 0], [1, 0, 0, 0.1], [0, 1, 0, 0.1]])
    words, senses = ["w"] * 4, ["A", "A", "B", "B"]
    spellings = [("▁w",), ("x", "w"), ("▁w",), ("x", "w")]
    report = segmentation_neighbours(vectors, words, senses, spellings)
    assert report.accuracy == 0.0 and report.shares_segmentation == 1.0
    assert report.candidates_sharing == pytest.approx(1 / 3)
    assert (report.accuracy_same, report.occurrences_same) == (0.0, 4)
    assert (report.accuracy_other, report.occurrences_other, report.chance_other) == (1.0, 4, 0.5)
    centred = centred_by_segmentation(vectors[None], words, spellings)[0]
    after = segmentation_neighbours(centred, words, senses, spellings)
    assert after.accuracy == 1.0 and after.shares_segmentation == 0.0


def test_bag_of_context_finds_senses_that_their_neighbouring_words_tell_apart():
    from sklearn.feature_extraction.text import TfidfVectorizer

    from benchmarks.context_tfidf import bag_of_context_accuracy, context_text
    from contextemb.evaluation.probe_sets import Probe

    def probe(sense: str, text: str) -> Probe:
        return Probe("배", sense, "", text, text.index("배"), text.index("배") + 1)

    ship = [probe("ship", f"항구에 배 {i}척이 정박했다") for i in range(3)]
    belly = [probe("belly", f"밥을 먹었더니 배 {i}부분이 아프다") for i in range(3)]
    assert context_text(ship[0]) == "항구에   0척이 정박했다"
    assert bag_of_context_accuracy(ship + belly, TfidfVectorizer(token_pattern=r"\S+")) == 1.0
    # the same sentences, senses shuffled across them: the contexts no longer tell the senses apart
    mixed = [probe(sense, p.text) for sense, p in zip(["ship", "belly"] * 3, ship + belly)]
    assert bag_of_context_accuracy(mixed, TfidfVectorizer(token_pattern=r"\S+")) < 0.5
