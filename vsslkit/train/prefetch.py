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

    thread = threading.Thread(target=work, name="vsslkit-prefetch", daemon=True)
    thread.start()
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
        thread.join()
