"""vsslkit.train.prefetch: same batches and steps as the plain loop, errors at their batch, early exit."""

from __future__ import annotations

import threading

import pytest

from vsslkit.train.prefetch import prefetched


def test_prefetched_matches_the_plain_loop_with_skip():
    seen_threads = set()

    def prepare(raw, step):
        seen_threads.add(threading.current_thread().name)
        return (raw * 10, step)

    got = list(prefetched(iter(range(7)), prepare, first_step=100, skip=2))
    assert got == [(r, (r * 10, 100 + k)) for k, r in enumerate(range(2, 7))]
    assert seen_threads == {"vsslkit-prefetch"}  # prepared off the training thread


def test_errors_surface_at_their_batch_and_early_exit_stops_the_thread():
    def batches():
        yield 1
        yield 2
        raise OSError("disk gone")

    it = prefetched(batches(), lambda raw, step: raw, first_step=0)
    assert [next(it)[0], next(it)[0]] == [1, 2]
    with pytest.raises(OSError, match="disk gone"):
        next(it)

    produced = []

    def endless():
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    before = threading.active_count()
    for raw, _ in prefetched(endless(), lambda raw, step: raw, first_step=0):
        if raw == 3:
            break
    assert threading.active_count() == before  # the thread was joined
    assert len(produced) <= 3 + 1 + 2  # at most depth + one in hand beyond what was used
