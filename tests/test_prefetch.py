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


def test_the_prefetch_thread_runs_one_torch_thread_and_the_training_thread_keeps_its_count():
    """One intra-op thread in the prefetch thread (no second OpenMP team competing for the cores),
    while the training thread keeps its count: a global change would silently halve training speed.
    A fresh interpreter whose main thread has not yet read its count (the case a leak would hit),
    OMP_NUM_THREADS=2 so the default is 2 on any machine."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import threading, torch\n"
        "from vsslkit.train.prefetch import prefetched\n"
        "inside = [n for _, n in prefetched(iter(range(3)), lambda r, s: torch.get_num_threads(), first_step=0)]\n"
        "later = []\n"
        "t = threading.Thread(target=lambda: later.append(torch.get_num_threads())); t.start(); t.join()\n"
        "torch.set_num_threads(2)\n"  # a second loop reuses the idle prefetch thread: still one thread
        "again = [n for _, n in prefetched(iter(range(2)), lambda r, s: torch.get_num_threads(), first_step=0)]\n"
        "print(inside, torch.get_num_threads(), later, again)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1, 1, 1] 2 [2] [1, 1]"
