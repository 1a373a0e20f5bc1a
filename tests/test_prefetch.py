"""vsslkit.train.prefetch: same batches and steps as the plain loop, errors at their batch, early exit."""

from __future__ import annotations

import threading
import time

import pytest

from vsslkit.train.prefetch import prefetched


def test_prefetched_matches_the_plain_loop_with_skip():
    seen_threads = set()

    def prepare(raw, step):
        seen_threads.add(threading.current_thread().name)
        return (raw * 10, step)

    got = list(prefetched(iter(range(7)), prepare, first_step=100, skip=2))
    assert got == [(r, (r * 10, 100 + k)) for k, r in enumerate(range(2, 7))]
    assert len(seen_threads) == 1 and seen_threads.pop().startswith("vsslkit-prefetch")  # off the training thread


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

    for raw, _ in prefetched(endless(), lambda raw, step: raw, first_step=0):
        if raw == 3:
            break
    count = len(produced)
    assert count <= 3 + 1 + 2  # at most depth + one in hand beyond what was used
    time.sleep(0.3)
    assert len(produced) == count  # the producer stopped when the loop left


def test_an_abandoned_prefetch_does_not_hold_up_interpreter_exit():
    import subprocess
    import sys

    code = ("import itertools\nfrom vsslkit.train.prefetch import prefetched\n"
            "g = prefetched(itertools.count(), lambda r, s: r, first_step=0)\nprint(next(g))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "(0, 0)"


def test_the_prefetch_thread_runs_torch_on_one_thread_and_leaves_the_default_alone():
    """A second OpenMP team (the prefetch thread at torch's default count) slowed every later torch op
    of the process by half on 2 cores; the thread runs torch single-threaded instead, while the
    training thread and threads started later keep the process default."""
    import torch

    before = torch.get_num_threads()
    inside = []

    def prepare(raw, step):
        inside.append(torch.get_num_threads())
        return torch.ones(64, 64, 64).mul(2).sum()  # large enough for a parallel region

    assert [raw for raw, _ in prefetched(iter(range(3)), prepare, first_step=0)] == [0, 1, 2]
    later = []
    t = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
    t.start()
    t.join()
    assert inside == [1, 1, 1] and torch.get_num_threads() == before and later == [before]


def test_inline_preparation_yields_the_same_pairs_on_the_callers_thread():
    names = set()

    def prepare(raw, step):
        names.add(threading.current_thread().name)
        return (raw * 10, step)

    got = list(prefetched(iter(range(7)), prepare, first_step=100, skip=2, background=False))
    assert got == [(r, (r * 10, 100 + k)) for k, r in enumerate(range(2, 7))]
    assert names == {threading.current_thread().name}
