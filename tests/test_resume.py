"""Exact resume: a run SIGKILLed mid-epoch and resumed ends with bit-identical weights.

This file is also the training script the test runs in subprocesses:
`python tests/test_resume.py OUT_DIR [STEP_SLEEP] [WORKERS]`.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
STEPS, CKPT_EVERY, BATCH, VIDEOS = 12, 3, 2, 10  # 5 steps per epoch: checkpoints 3, 6, 9 are mid-epoch


def train(out_dir: str, step_sleep: float, workers: int) -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)
    sys.path.insert(0, str(HERE))
    from test_loop import TinyNet, make_loader

    from vsslkit.data.clips import BatchPreparer
    from vsslkit.train.loop import fit, make_optimizer, make_scheduler

    model = TinyNet(dropout=0.3)  # dropout draws from the torch RNG: its state must be resumed too
    opt = make_optimizer("sgd", model.parameters(), lr=0.05)
    sched = make_scheduler("multistep", opt, milestones=[7])
    fit(model, make_loader(VIDEOS, BATCH, seed=4, workers=workers), optimizer=opt, scheduler=sched, max_steps=STEPS,
        out_dir=out_dir, prepare=BatchPreparer(crop_size=16, seed=4), log_every=1, checkpoint_every=CKPT_EVERY,
        progress=False, on_log=lambda row: time.sleep(step_sleep))


def _run(out: Path, sleep: float, workers: int = 0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    return subprocess.Popen([sys.executable, __file__, str(out), str(sleep), str(workers)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _weights(out: Path) -> dict[str, torch.Tensor]:
    from vsslkit.train.checkpoint import load_checkpoint

    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert state["step"] == STEPS
    return state["model"]


def _checkpoint_step(out: Path) -> int:
    from vsslkit.train.checkpoint import load_checkpoint

    path = out / "checkpoints" / "last.pt"
    return load_checkpoint(path)["step"] if path.exists() else 0


@pytest.mark.slow
def test_killed_and_resumed_run_matches_uninterrupted_bit_for_bit(tmp_path):
    ref = _run(tmp_path / "ref", 0.0)
    killed = _run(tmp_path / "killed", 0.4, workers=2)  # worker count must not change the data either
    deadline = time.time() + 120
    while _checkpoint_step(tmp_path / "killed") < 6:
        assert killed.poll() is None, killed.stdout.read()
        assert time.time() < deadline, "no checkpoint at step 6 within 120 s"
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    at = _checkpoint_step(tmp_path / "killed")
    assert 6 <= at < STEPS, f"the kill came too late (checkpoint at step {at})"
    assert at % (VIDEOS // BATCH) != 0, "the test must resume mid-epoch"
    resumed = _run(tmp_path / "killed", 0.0)
    out, _ = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, out
    assert "resumed from" in out and f"at step {at}" in out
    ref_out, _ = ref.communicate(timeout=180)
    assert ref.returncode == 0, ref_out

    a, b = _weights(tmp_path / "ref"), _weights(tmp_path / "killed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = list(csv.DictReader((tmp_path / "killed" / "metrics.csv").open()))
    ref_rows = list(csv.DictReader((tmp_path / "ref" / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, STEPS + 1))  # no duplicated rows after resume
    assert [r["loss"] for r in rows] == [r["loss"] for r in ref_rows]


def test_resume_with_a_different_world_size_is_refused(tmp_path):
    from test_loop import TinyNet, make_loader

    from vsslkit.data.clips import BatchPreparer, EpochSampler
    from vsslkit.train.loop import fit, make_optimizer

    model = TinyNet()
    kw = {"max_steps": 2, "out_dir": tmp_path, "prepare": BatchPreparer(crop_size=16), "progress": False}
    fit(model, make_loader(), optimizer=make_optimizer("sgd", model.parameters(), lr=0.1), **kw)
    loader = make_loader()
    loader2 = torch.utils.data.DataLoader(loader.dataset, batch_size=2, collate_fn=loader.collate_fn,
                                          sampler=EpochSampler(len(loader.dataset), seed=0, world_size=2))
    with pytest.raises(ValueError, match="world_size=1"):
        fit(model, loader2, optimizer=make_optimizer("sgd", model.parameters(), lr=0.1), **{**kw, "max_steps": 4})


if __name__ == "__main__":
    train(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.0, int(sys.argv[3]) if len(sys.argv) > 3 else 0)
