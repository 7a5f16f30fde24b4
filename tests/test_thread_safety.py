"""Embedding from several threads at once, as a web service does, on the session's tiny trained model.

With two or more intra-op threads, the biLM runs its two directions on worker threads with half the
threads each, and pools words on a one-thread worker (contextemb.threads). Each such task runs alone on
its worker, with the same thread count whoever asked for it, so concurrent callers get exactly (bit for
bit) the vectors one caller gets; and no caller's thread count, nor the default a new thread starts with,
may change.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import contextemb
from contextemb import ContextualEmbedder
from contextemb.threads import call_with_threads, submit

TEXTS = ["삼성, 사상 첫 통합우승 4연패", "한화, 악몽같은 연패 언제 탈출하나", "The bank raised its rates.",
         "이 영화 최고 🙂🎬 진짜   강추", "", "시간 아깝다", "Mixed 한국어 and English 文字", "배가 고파서 배를 먹었다"]
ROUNDS = 4
CALLER_THREADS = 2  # the workers only come in when the caller has 2+ intra-op threads


@pytest.fixture
def two_intra_op_threads():
    """The process default (and this thread's count) at CALLER_THREADS for the test, put back after."""
    before = torch.get_num_threads()
    torch.set_num_threads(CALLER_THREADS)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def embedder(tiny_model_dir):
    return contextemb.load(tiny_model_dir, precision="float32")


def _fresh_thread_count() -> int:
    """torch.get_num_threads() in a new thread: the process-wide default a thread starts with."""
    seen = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return seen[0]


def test_two_threads_at_once_get_one_threads_vectors_and_keep_thread_counts(embedder, two_intra_op_threads):
    want = embedder.embed(TEXTS)
    assert torch.get_num_threads() == CALLER_THREADS
    start = threading.Barrier(2)
    embedding = threading.Event()
    outcomes: dict[int, tuple[list, int]] = {}

    def caller(name: int) -> None:
        start.wait()  # no torch call before this: the thread takes the default when it first embeds
        embedding.set()
        results = [embedder.embed(TEXTS) for _ in range(ROUNDS)]
        outcomes[name] = (results, torch.get_num_threads())

    callers = [threading.Thread(target=caller, args=(name,)) for name in range(2)]
    for thread in callers:
        thread.start()
    embedding.wait()
    bystanders = []  # threads that start while the others embed, as a web service's new request threads
    while any(thread.is_alive() for thread in callers):
        bystanders.append(_fresh_thread_count())
    for thread in callers:
        thread.join()
    assert sorted(outcomes) == [0, 1]
    for results, caller_threads_after in outcomes.values():
        assert caller_threads_after == CALLER_THREADS
        for result in results:
            for got, expected in zip(result, want):
                assert got.words == expected.words
                np.testing.assert_array_equal(got.vectors, expected.vectors)  # exactly: see the module docstring
    assert bystanders and set(bystanders) == {CALLER_THREADS}
    assert torch.get_num_threads() == CALLER_THREADS
    assert _fresh_thread_count() == CALLER_THREADS


def test_spans_from_two_threads_match_one_thread(embedder, two_intra_op_threads):
    items = [(text, 0, len(text.split()[0])) for text in TEXTS if text.strip()]
    want = embedder.embed_spans(items)
    got: dict[int, list] = {}
    callers = [threading.Thread(target=lambda name=name: got.__setitem__(name, embedder.embed_spans(items)))
               for name in range(2)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join()
    for vectors in got.values():
        for a, b in zip(vectors, want):
            np.testing.assert_array_equal(a, b)


def test_workers_run_under_the_callers_grad_modes_with_their_own_thread_count(two_intra_op_threads):
    def modes():
        return torch.is_grad_enabled(), torch.is_inference_mode_enabled(), torch.get_num_threads()

    assert submit(1, modes).result() == (True, False, 1)
    with torch.no_grad():
        assert submit(1, modes).result() == (False, False, 1)
    with torch.inference_mode():
        assert submit(1, modes).result() == (False, True, 1)
        assert call_with_threads(1, modes) == (False, True, 1)
    assert call_with_threads(CALLER_THREADS, modes) == (True, False, CALLER_THREADS)  # here, in this thread
    assert torch.get_num_threads() == CALLER_THREADS
    with pytest.raises(ZeroDivisionError):  # a worker's exception reaches the caller
        call_with_threads(1, lambda: 1 / 0)


def test_gradients_flow_through_words_pooled_on_a_worker(tiny_model_dir, two_intra_op_threads):
    layer = ContextualEmbedder(tiny_model_dir, requires_grad=True, dropout=0.0)
    output = layer(TEXTS[:3])
    output.representations[0].sum().backward()
    grads = [p.grad for p in layer.bilm.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
