"""Several corpus files: naming them (files, globs, directories), --mix weights, the interleaved stream, and a
resume after kill -9 that ends bit-for-bit where an unbroken run over the same files ends."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from contextemb.corpus import MixedReader, mixture_text, parse_mix, resolve_corpus, source_name
from contextemb.errors import CorpusError
from contextemb.io import checkpoint_path
from contextemb.pretrain.checkpoint import read_checkpoint_state

from test_reliability import assert_same_weights  # noqa: E402

TINY_RUN = Path(__file__).parent / "tiny_run.py"


def write(path: Path, lines: list[str]) -> Path:
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.fixture()
def three_files(tmp_path) -> list[Path]:
    folder = tmp_path / "corpus"
    folder.mkdir()
    return [write(folder / "alpha.txt", [f"alpha line {i}" for i in range(200)]),
            write(folder / "beta.txt.gz", [f"beta {i} 베타 문장" for i in range(100)]),
            write(folder / "gamma.txt", [f"gamma {i}" for i in range(50)])]


def test_resolve_corpus_takes_files_globs_and_directories(three_files, tmp_path):
    folder = three_files[0].parent
    (folder / "notes.md").write_text("not a corpus")
    assert resolve_corpus([folder]) == sorted(three_files)
    assert resolve_corpus([str(folder / "*.txt")]) == [folder / "alpha.txt", folder / "gamma.txt"]
    # a file named twice (directly and through a directory) is read once, in first-named order
    assert resolve_corpus([three_files[2], folder]) == [three_files[2], three_files[0], three_files[1]]
    with pytest.raises(CorpusError, match="matches no files"):
        resolve_corpus([str(tmp_path / "nothing-*.txt")])
    with pytest.raises(CorpusError, match="does not exist"):
        resolve_corpus([tmp_path / "missing.txt"])
    empty = tmp_path / "empty-dir"
    empty.mkdir()
    with pytest.raises(CorpusError, match="no .txt"):
        resolve_corpus([empty])


def test_parse_mix_by_name_and_from_a_file(three_files, tmp_path):
    assert source_name(three_files[1]) == "beta"
    assert parse_mix("beta=2,gamma=0.5", three_files) == [1.0, 2.0, 0.5]
    assert parse_mix(None, three_files) == [1.0, 1.0, 1.0]
    weights = tmp_path / "weights.tsv"
    weights.write_text("# passes per epoch\nalpha\t3\nbeta.txt.gz 0.25\n")
    assert parse_mix(str(weights), three_files) == [3.0, 0.25, 1.0]
    for bad, message in [("delta=2", "names no corpus file"), ("beta=-1", "positive"), ("beta=x", "number"),
                         ("beta", "NAME=WEIGHT")]:
        with pytest.raises(CorpusError, match=message):
            parse_mix(bad, three_files)


def test_mixed_reader_reads_each_source_by_its_weight(three_files):
    """Weights are passes per epoch: over two epochs, weight 1 reads every line of a source twice, weight 2
    four times (the source wraps at its end), whatever the file sizes."""
    reader = MixedReader.from_files(three_files, [1.0, 2.0, 1.0], pool_bytes=300)
    counts: Counter = Counter()
    for _, position, lines in reader.pools():
        if reader.epochs_done(position) >= 2.0:  # the pools before this one read two epochs and under one pool
            break
        counts.update(line.split()[0] for line in lines)
    # a pool of 300 bytes holds about 5 alpha, 9 beta and 2 gamma lines: the counts may overshoot by that
    assert 2 * 200 <= counts["alpha"] <= 2 * 200 + 6
    assert 4 * 100 <= counts["beta"] <= 4 * 100 + 10
    assert 2 * 50 <= counts["gamma"] <= 2 * 50 + 3
    # every pool holds lines of every source, so every batch can mix them
    _, _, first_pool = next(iter(reader.pools()))
    assert {line.split()[0] for line in first_pool} == {"alpha", "beta", "gamma"}


def test_a_pool_is_rebuilt_exactly_from_its_position(three_files):
    reader = MixedReader.from_files(three_files, [1.0, 3.0, 1.0], pool_bytes=1500)
    pools = [(position, lines) for _, (_, position, lines) in zip(range(40), reader.pools())]
    for index in (1, 17, 39):  # some after a source has wrapped
        position, lines = pools[index]
        _, again_position, again = next(iter(reader.pools(position)))
        assert (again_position, again) == (position, lines)


def test_mixture_text_is_one_epoch_of_every_source(three_files):
    reader = MixedReader.from_files(three_files, [1.0, 1.0, 1.0], pool_bytes=1000)
    counts = Counter(line.split()[0] for line in mixture_text(reader))
    assert counts == {"alpha": 200, "beta": 100, "gamma": 50}


def test_an_empty_or_blank_source_is_refused(three_files, tmp_path):
    blank = write(tmp_path / "blank.txt", ["", "   ", ""])
    with pytest.raises(CorpusError, match="holds no text"):
        list(zip(range(50), MixedReader.from_files([three_files[0], blank], pool_bytes=500).pools()))
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(CorpusError, match="holds no text"):
        MixedReader.from_files([three_files[0], empty], pool_bytes=500)


def _tiny_run(corpus: str, out: Path, steps: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "MIX": "part_b=2"}
    return subprocess.Popen([sys.executable, str(TINY_RUN), corpus, str(out), str(steps), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def two_part_corpus(tmp_path_factory, small_corpus) -> str:
    """The small corpus cut in two: a .txt and a .txt.gz, read interleaved with part_b at weight 2."""
    folder = tmp_path_factory.mktemp("parts")
    lines = small_corpus.read_text(encoding="utf-8").splitlines()
    first = write(folder / "part_a.txt", lines[:900])
    second = write(folder / "part_b.txt.gz", lines[900:])
    return os.pathsep.join([str(first), str(second)])


@pytest.mark.slow
def test_kill_9_then_resume_over_several_files_matches_unbroken_run(two_part_corpus, tmp_path):
    straight = tmp_path / "straight"
    done = _tiny_run(two_part_corpus, straight, 40)
    assert done.wait(timeout=300) == 0, done.stdout.read()
    out = tmp_path / "killed"
    ckpt = checkpoint_path(out, "forward")
    last_step = 0
    for kill in range(3):
        process = _tiny_run(two_part_corpus, out, 40, *(["--resume"] if kill else []))
        deadline = time.monotonic() + 180
        while process.poll() is None and time.monotonic() < deadline:  # past the last checkpoint
            state = read_checkpoint_state(ckpt) if ckpt.exists() else None
            if state is not None and state.step > last_step:
                break
            time.sleep(0.01)
        time.sleep(0.1 * kill)
        assert process.poll() is None, "the run finished before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait()
        last_step = read_checkpoint_state(ckpt).step
        assert 0 < last_step < 40
    final = _tiny_run(two_part_corpus, out, 40, "--resume")
    assert final.wait(timeout=300) == 0, final.stdout.read()
    assert_same_weights(straight, out)
    assert read_checkpoint_state(ckpt).corpus == ["part_a", "part_b"]


@pytest.mark.slow
def test_resume_with_other_corpus_files_is_refused(two_part_corpus, tmp_path):
    out = tmp_path / "m"
    assert _tiny_run(two_part_corpus, out, 6).wait(timeout=300) == 0
    first_only = two_part_corpus.split(os.pathsep)[0]
    env = {k: v for k, v in os.environ.items() if k != "MIX"}
    process = subprocess.run([sys.executable, str(TINY_RUN), first_only, str(out), "12", "--resume"],
                             capture_output=True, text=True, timeout=300, env=env)
    assert process.returncode != 0
    assert "reads the run's corpus files in their order (part_a, part_b)" in process.stdout + process.stderr
