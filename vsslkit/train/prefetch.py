"""Prepare the next batch while the model trains on this one (one background thread), when a core is free.

`fit` spends a tenth of a CPU step loading and augmenting a batch (crop, flip, float; see
`vsslkit bench train`); torch releases the GIL in its kernels, so a thread that runs
`prepare(raw, step)` one batch ahead hides that time behind the forward/backward pass -- if it has a
core to run on. Batches come out in loader order with the same step numbers, so a seeded `prepare`
(`BatchPreparer`) gives bit-identical batches on either path; a `prepare` drawing from the global
torch RNG would not be reproducible here and must not be used.

Two measured traps (`vsslkit bench train`, docs/scaling.md "Loop overhead"):
- OpenMP keeps one thread team per thread that runs a parallel torch op. A prefetch thread with
  torch's default thread count starts a second team, and once a process has more OpenMP threads
  than cores, libgomp stops spinning between parallel regions: every torch op after that, in the
  training thread too and for the rest of the process, paid a futex wake-up (a bare step went from
  28 to 45 ms on the 2-core CPU). The prefetch threads therefore run torch single-threaded.
- When torch's threads already fill every core, a background thread can only take a core away
  from them mid-step; preparing inline is then faster (`background=False`, `fit`'s choice).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch

_DONE = object()
# Reused daemon threads: starting a thread per epoch cost ~7 ms on a loaded machine (cProfile of
# bench train). Daemon, so an abandoned producer never holds up interpreter exit; a new thread is
# started only when none is idle, so concurrent loops never wait for each other.
_JOBS: queue.SimpleQueue = queue.SimpleQueue()
_IDLE_LOCK = threading.Lock()
_idle = 0


def _serve(ready: threading.Event) -> None:
    global _idle
    _single_threaded_torch()
    ready.set()
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
        threads = torch.get_num_threads()  # the training thread's count: the default restored below
        ready = threading.Event()
        threading.Thread(target=_serve, args=(ready,), name="vsslkit-prefetch", daemon=True).start()
        ready.wait()
        torch.set_num_threads(threads)
    return finished


def _single_threaded_torch() -> None:
    """Make this (new) thread run torch ops on itself only, leaving the process default alone.

    torch reads the process-wide count into a thread's OpenMP setting once, at the thread's first
    parallel call (`get_num_threads` counts); setting 1 after that sticks to this thread. The
    caller restores the process-wide value (`_in_thread` waits for this and then does).
    """
    torch.get_num_threads()
    torch.set_num_threads(1)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's or taskset's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def core_is_free(device: torch.device) -> bool:
    """Whether a background prefetch thread has room: on CUDA the CPU waits for the GPU anyway;
    on CPU only when torch uses fewer threads than there are cores."""
    return device.type == "cuda" or torch.get_num_threads() < usable_cores()


def prefetched(batches: Iterator[Any], prepare: Callable[[Any, int], Any], *, first_step: int, skip: int = 0,
               depth: int = 1, background: bool = True) -> Iterator[tuple[Any, Any]]:
    """Yield `(raw, prepare(raw, step))` for the loader's batches after the first `skip`, with
    `step = first_step, first_step + 1, ...`, computed up to `depth` batches ahead in a thread
    (`background`) or when asked for (not background: the same pairs, on the caller's thread).

    An exception in loading or preparing is raised here, at the batch it belongs to. Leaving the
    loop early (or an error in it) stops the thread.
    """
    if not background:
        yield from _inline(batches, prepare, first_step=first_step, skip=skip)
        return
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


def _inline(batches: Iterator[Any], prepare: Callable[[Any, int], Any], *, first_step: int,
            skip: int) -> Iterator[tuple[Any, Any]]:
    step = first_step
    for i, raw in enumerate(batches):
        if i < skip:
            continue
        yield raw, prepare(raw, step)
        step += 1
