"""Worker threads with their own torch intra-op thread count, so that no caller's thread count ever changes.

Some inference work runs faster on fewer threads than the caller has: each biLM direction on half the cores
while the other direction runs on the rest, and the tiny per-text pooling products on one core. Setting
`torch.set_num_threads` around that work in the caller's thread is not safe: the count is each thread's own,
but the call also rewrites the process-wide default that a thread takes at its first parallel torch op.
Two threads embedding at once (a web service) then race: one thread's "restore" undoes another's, and a
fresh thread that starts meanwhile keeps the lowered count for good.

So contextemb never sets a caller's thread count. It hands such work to a worker that set its own count
once, when it started, and then put the process-wide default back. A thread can write the default only by
setting its own count too, so a throwaway thread writes it; a lock keeps workers from starting at once.
The workers are shared by every caller, WORKERS_PER_COUNT per thread count: however many threads embed
at once, their work queues for the same workers instead of adding threads to the cores, and each task
runs with the same thread count whoever sent it, so it gets the same numbers.

    future = submit(1, torch.matmul, a, b)   # runs on a worker with one intra-op thread
    future.result()                           # the caller's grad and inference modes applied there
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, TypeVar

import torch

from .errors import ConfigError

Result = TypeVar("Result")

WORKERS_PER_COUNT = 2  # the two biLM directions run at once

_pools: dict[int, ThreadPoolExecutor] = {}  # intra-op threads -> workers that run with that many
_pools_lock = threading.Lock()
_default_lock = threading.Lock()  # held while a starting worker has the process-wide default changed


def submit(threads: int, function: Callable[..., Result], *args: Any) -> "Future[Result]":
    """Run function(*args) on a worker thread with `threads` torch intra-op threads.

    The worker runs under the caller's grad mode and inference mode (both are per thread in torch).
    Workers run one task at a time each, WORKERS_PER_COUNT per thread count, shared by all callers.
    """
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()
    return _pool(threads).submit(_run_with_modes, grad, inference, function, args)


def call_with_threads(threads: int, function: Callable[..., Result], *args: Any) -> Result:
    """function(*args) on `threads` intra-op threads: in the caller's thread when it has that many, else on a
    worker (see submit), waiting for the result."""
    if torch.get_num_threads() == threads:
        return function(*args)
    return submit(threads, function, *args).result()


def _run_with_modes(grad: bool, inference: bool, function: Callable[..., Result], args: tuple) -> Result:
    with torch.inference_mode(inference), torch.set_grad_enabled(grad):
        return function(*args)


def _pool(threads: int) -> ThreadPoolExecutor:
    with _pools_lock:
        if threads not in _pools:
            pool = ThreadPoolExecutor(WORKERS_PER_COUNT, thread_name_prefix=f"contextemb-{threads}t",
                                      initializer=_set_worker_threads, initargs=(threads,))
            _start_every_worker(pool)
            _pools[threads] = pool
        return _pools[threads]


def _start_every_worker(pool: ThreadPoolExecutor) -> None:
    """Start all of a pool's workers now, together: ThreadPoolExecutor starts a worker only when a task finds
    none idle, and a worker starting later (when two callers first submit at once) would change the
    process-wide default for a moment while other threads may be starting."""
    everyone = threading.Barrier(WORKERS_PER_COUNT + 1)
    for _ in range(WORKERS_PER_COUNT):
        pool.submit(everyone.wait)  # each task holds its worker, so the next submit has to start another
    everyone.wait()


def _set_worker_threads(threads: int) -> None:
    """Worker start: this thread's intra-op count becomes `threads`; the process-wide default stays."""
    with _default_lock:
        default = torch.get_num_threads()  # a thread's first torch call gives it the process-wide default
        torch.set_num_threads(threads)  # ... and this sets the default as well as this thread's count
        restorer = threading.Thread(target=torch.set_num_threads, args=(default,), name="contextemb-restore")
        restorer.start()
        restorer.join()


def _forget_pools() -> None:
    """In a forked child the workers are gone (fork copies only the calling thread): start afresh."""
    global _pools_lock, _default_lock
    _pools.clear()
    _pools_lock, _default_lock = threading.Lock(), threading.Lock()


os.register_at_fork(after_in_child=_forget_pools)
