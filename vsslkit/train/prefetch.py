"""Prepare the next batch while the model trains on this one (one background thread).

`fit` spends a tenth of a CPU step loading and augmenting a batch (crop, flip, float; see
`vsslkit bench train`); torch releases the GIL in its kernels, so a thread that runs
`prepare(raw, step)` one batch ahead hides that time behind the forward/backward pass. Batches
come out in loader order with the same step numbers, so a seeded `prepare` (`BatchPreparer`)
gives bit-identical batches; a `prepare` drawing from the global torch RNG would not be
reproducible here and must not be used.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

_DONE = object()
# Reused daemon threads: starting a thread per epoch cost ~7 ms on a loaded machine (cProfile of
# bench train). Daemon, so an abandoned producer never holds up interpreter exit; a new thread is
# started only when none is idle, so concurrent loops never wait for each other.
_JOBS: queue.SimpleQueue = queue.SimpleQueue()
_IDLE_LOCK = threading.Lock()
_idle = 0


def _serve() -> None:
    global _idle
    while True:
        job, finished = _JOBS.get()
        try:
            job()
        finally:
            finished.set()
            with _IDLE_LOCK:
                _idle += 1


def _in_thread(job: Callable[[], None]) -> threading.Event:
    """Run `job` on an idle worker thread (or a new one); the event is set when it returns."""
    global _idle
    finished = threading.Event()
    with _IDLE_LOCK:
        spawn = _idle == 0
        if not spawn:
            _idle -= 1
    _JOBS.put((job, finished))
    if spawn:
        threading.Thread(target=_serve, name="vsslkit-prefetch", daemon=True).start()
    return finished


def prefetched(batches: Iterator[Any], prepare: Callable[[Any, int], Any], *, first_step: int, skip: int = 0,
               depth: int = 1) -> Iterator[tuple[Any, Any]]:
    """Yield `(raw, prepare(raw, step))` for the loader's batches after the first `skip`, with
    `step = first_step, first_step + 1, ...`, computed up to `depth` batches ahead.

    An exception in loading or preparing is raised here, at the batch it belongs to. Leaving the
    loop early (or an error in it) stops the thread.
    """
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            step = first_step
            for i, raw in enumerate(batches):
                if stop.is_set():
                    return
                if i < skip:
                    continue
                if not put((raw, prepare(raw, step))):
                    return
                step += 1
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001 -- re-raised in the training thread
            put(exc)

    finished = _in_thread(work)
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        finished.wait()  # work() returns promptly once stop is set
