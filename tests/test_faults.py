"""Fault injection: full disks, kill -9, corrupted files and bad flags (issue 12).

Four kinds of test, all on CPU with tiny settings (the file runs in well under 2 minutes):
- ENOSPC injected into every writer (frame store, checkpoints, synthetic set, results and
  reports): one clear error, nothing half-written left for a later run to trust. Injected by
  wrapping Python's file objects (`full_disk`), and for real on a small tmpfs when this process
  may mount one (root); the tmpfs tests skip otherwise.
- kill -9 at a random step of a pretraining run, then resume: bit-identical to an uninterrupted
  run, for every branch (`BRANCHES`; add a method's branch as it lands).
- a CLI table: every bad value -> exit code 2 and one line `vsslkit: <input>: <problem>`.
- the smaller faults: stale frames, split-file problems, orphaned workers, truncated files,
  a corrupted last.pt, archives with links.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from vsslkit.cli import main
from vsslkit.errors import CheckpointError, DiskFullError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
BASE = ["--backbone", "r3d_10", "--width", "0.125", "--clip-len", "8", "--size", "32", "--short-side", "32",
        "--batch-size", "4", "--no-progress", "--no-flip", "--device", "cpu"]
TINY = [*BASE, "--task", "pace", "--speed-pool", "1", "2"]  # pretrain
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


# ----------------------------------------------------------------------------- helpers


class _FullFile:
    """A writable file on a disk with `budget[0]` bytes left: the write that does not fit writes
    what fits and raises ENOSPC, as a real filesystem does."""

    def __init__(self, f, budget: list[int]):
        self._f, self._budget = f, budget

    def write(self, data):
        n = len(data)
        if n > self._budget[0]:
            fits = self._budget[0]
            if fits:
                self._f.write(data[:fits])
            self._budget[0] = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._budget[0] -= n
        return self._f.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def __iter__(self):
        return iter(self._f)

    def __getattr__(self, name):
        return getattr(self._f, name)


def full_disk(monkeypatch, budget: int = 0, only: str | None = None) -> None:
    """From now on, files opened for writing (whose path contains `only`) share `budget` bytes."""
    left = [budget]
    real_open, real_fdopen = io.open, os.fdopen

    def _name(target) -> str:
        if isinstance(target, int):
            try:
                return os.readlink(f"/proc/self/fd/{target}")
            except OSError:
                return ""
        return os.fspath(target) if isinstance(target, (str, os.PathLike)) else ""

    def _wrap(f, target, mode: str):
        writing = any(c in mode for c in "wax+")
        return _FullFile(f, left) if writing and (only is None or only in _name(target)) else f

    def fake_open(file, mode="r", *args, **kwargs):
        return _wrap(real_open(file, mode, *args, **kwargs), file, mode)

    def fake_fdopen(fd, mode="r", *args, **kwargs):
        return _wrap(real_fdopen(fd, mode, *args, **kwargs), fd, mode)

    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "fdopen", fake_fdopen)


def one_line_error(capsys, *needles: str) -> str:
    """The command's stderr is exactly one line `vsslkit: ...` containing every needle."""
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("vsslkit: ") and "Traceback" not in err[0], err[0]
    for needle in needles:
        assert needle in err[0], (needle, err[0])
    return err[0]


def leftovers(folder: Path) -> list[str]:
    """Temp files (the kit names them `.<name>...`) anywhere under `folder`."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*") if p.is_file() and ".vsslkit" not in p.parts)


class Tmpfs:
    """A small tmpfs mounted at `path` (root only); `resize` keeps its files."""

    def __init__(self, path: Path, size: str):
        path.mkdir(parents=True, exist_ok=True)
        if not sys.platform.startswith("linux") or os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root on Linux")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                                capture_output=True, text=True, check=False)
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        self.path = path

    def resize(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture
def tmpfs(tmp_path):
    mounts: list[Tmpfs] = []

    def make(name: str, size: str) -> Tmpfs:
        mounts.append(Tmpfs(tmp_path / name, size))
        return mounts[-1]

    yield make
    for m in mounts:
        m.close()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A tiny synthetic set (98 videos of 24-32 frames at 32 px) and a frame store built from it."""
    from vsslkit.data.datasets import open_dataset
    from vsslkit.data.store import FrameStore
    from vsslkit.data.synthetic import make_synthetic

    root = make_synthetic(tmp_path_factory.mktemp("syn"), videos_per_class=7, size=32, length_range=(24, 32),
                          progress=False, workers=2)
    store = tmp_path_factory.mktemp("store")
    FrameStore(store, short_side=32).build(open_dataset(root, subset="all").paths, progress=False, workers=2)
    return root, store


@pytest.fixture(scope="module")
def small(synthetic, tmp_path_factory):
    """The synthetic set cut to 8 training videos (same files, own split lists): for tests that build stores."""
    root = tmp_path_factory.mktemp("small")
    (root / "ucfTrainTestlist").mkdir()
    (root / "videos").symlink_to(synthetic[0] / "videos")
    splits = synthetic[0] / "ucfTrainTestlist"
    shutil.copy(splits / "classInd.txt", root / "ucfTrainTestlist")
    train = splits.joinpath("trainlist01.txt").read_text().splitlines()[::9][:8]
    (root / "ucfTrainTestlist" / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (root / "ucfTrainTestlist" / "testlist01.txt").write_text(splits.joinpath("testlist01.txt").read_text())
    return root


# ----------------------------------------------------------------------------- ENOSPC in every writer

RAW = 40 * 32 * 32 * 3  # tiny_video (40 frames, 48x48) at short side 32


@pytest.mark.parametrize("budget, stage", [(0, "raw frames"), (RAW + 100, ".npy"), (2 * RAW + 200, "record (.json)")])
def test_store_full_disk_is_one_error_and_leaves_nothing(tiny_video, tmp_path, monkeypatch, budget, stage):
    from vsslkit.data.store import FrameStore
    from vsslkit.data.video import decode

    store = FrameStore(tmp_path / "store", short_side=32)
    full_disk(monkeypatch, budget, only=str(tmp_path / "store"))
    with pytest.raises(DiskFullError, match=f"{tmp_path / 'store'}: no space left on device"):
        store.build([tiny_video], progress=False)  # not a "skipped video": the build stops
    monkeypatch.undo()
    assert leftovers(tmp_path / "store") == [], stage
    assert not list((tmp_path / "store").glob("*.json")) and not list((tmp_path / "store").glob("*.npy")), stage
    report = store.build([tiny_video], progress=False)  # with space again: built from scratch, correct
    assert report.ok == [tiny_video]
    expected = FrameStore(tmp_path / "fresh", short_side=32).read(tiny_video, range(40))
    assert np.array_equal(store.read(tiny_video, range(40)), expected)
    assert len(decode(tiny_video)) == 40


def test_user_errors_cross_process_boundaries_intact(tmp_path):
    import pickle

    from vsslkit.data.datasets import DatasetError

    for err in (DiskFullError(tmp_path, "the frame store (a.mp4)"), DatasetError(tmp_path, "bad"),
                CheckpointError(tmp_path, "torn")):
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is type(err) and str(copy) == str(err) and str(err).startswith(f"{tmp_path}: ")


def test_store_full_disk_in_worker_processes(small, tmpfs):
    """`workers > 1`: the full disk of a spawned worker stops the build in the parent, as one error."""
    from vsslkit.data.datasets import open_dataset
    from vsslkit.data.store import FrameStore

    disk = tmpfs("tfs", "100k")
    paths = open_dataset(small).paths
    with pytest.raises(DiskFullError, match=f"{disk.path}: no space left on device"):
        FrameStore(disk.path, short_side=32).build(paths, progress=False, workers=2)
    assert leftovers(disk.path) == []


def test_checkpoint_full_disk_keeps_the_previous_file(tmp_path, monkeypatch):
    from vsslkit.train.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(path, {"step": 1, "w": torch.zeros(1000)})
    full_disk(monkeypatch, 5000)
    with pytest.raises(DiskFullError, match="last.pt: no space left on device while writing a checkpoint"):
        save_checkpoint(path, {"step": 2, "w": torch.ones(1000)}, keep_previous=True)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert leftovers(tmp_path) == [] and sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]


def test_pretrain_full_disk_at_a_checkpoint_is_one_line(synthetic, tmp_path, monkeypatch, capsys):
    root, store = synthetic
    full_disk(monkeypatch, 0, only="last.pt")
    code = main(["pretrain", "--data", str(root), "--store", str(store), "--out", str(tmp_path / "run"),
                 "--steps", "1", *TINY])
    monkeypatch.undo()
    assert code == 2
    one_line_error(capsys, "last.pt", "no space left on device")
    assert leftovers(tmp_path / "run") == [] and not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


@pytest.mark.parametrize("victim", ["trainlist01.txt", "testlist03.txt", "synthetic.json"])
def test_synthetic_full_disk_never_leaves_a_torn_split_file(synthetic, tmp_path, monkeypatch, capsys, victim):
    from vsslkit.data.datasets import DatasetError, open_dataset
    from vsslkit.data.synthetic import make_synthetic

    out = tmp_path / "syn"
    shutil.copytree(synthetic[0] / "videos", out / "videos")  # rendered already: only the writes are tested
    from vsslkit.data.synthetic import GENERATOR_VERSION, _request

    partial = _request(7, 0, 32, 25, (24, 32), "smooth", GENERATOR_VERSION)  # what make_synthetic below asks for
    (out / "synthetic.partial.json").write_text(json.dumps(partial))
    kwargs = {"videos_per_class": 7, "size": 32, "length_range": (24, 32), "progress": False, "workers": 1}
    full_disk(monkeypatch, 0, only=victim)
    with pytest.raises(DiskFullError, match=f"{out}: no space left on device while writing the synthetic dataset"):
        make_synthetic(out, **kwargs)
    monkeypatch.undo()
    assert leftovers(out) == [] and not (out / "synthetic.json").exists()
    splits = out / "ucfTrainTestlist"
    assert all(p.stat().st_size > 0 for p in splits.glob("*.txt")), "a split file was left empty"
    assert not (splits / victim).exists()
    if victim == "trainlist01.txt":  # a later run is told what is missing, never "all 0 are too short"
        with pytest.raises(DatasetError, match="trainlist01.txt: split file missing"):
            open_dataset(out, split=1)
        assert main(["pretrain", "--data", str(out), "--out", str(tmp_path / "run"), "--steps", "1", *TINY]) == 2
        one_line_error(capsys, "trainlist01.txt", "split file missing")
    make_synthetic(out, **kwargs)  # with space again the set is finished and marked complete
    assert json.loads((out / "synthetic.json").read_text())["request"]["videos_per_class"] == 7
    assert len(open_dataset(out, split=3, subset="test")) > 0


def test_results_and_reports_full_disk_keep_the_old_file(tmp_path, monkeypatch):
    from vsslkit.eval.results import Protocol, write_result
    from vsslkit.viz.report_html import ReportPage, write_report_html

    protocol = Protocol(task="video_classification", dataset="syn", split=1, subset="test")
    result = write_result(tmp_path / "result.json", {"top1": 0.5}, protocol)
    (tmp_path / "report.html").write_text("old report")
    full_disk(monkeypatch, 10)
    with pytest.raises(DiskFullError, match="result.json: no space left on device"):
        write_result(result, {"top1": 0.9}, protocol)
    with pytest.raises(DiskFullError, match="report.html: no space left on device"):
        write_report_html(tmp_path / "report.html", ReportPage(title="t", verdicts=[], body="new"))
    monkeypatch.undo()
    assert json.loads(result.read_text())["metrics"]["top1"] == 0.5
    assert (tmp_path / "report.html").read_text() == "old report" and leftovers(tmp_path) == []


def test_store_on_a_real_full_disk_then_resized(small, tmpfs, tmp_path):
    """The issue's repro: a small tmpfs as --store. One line, no temp files; resized, a rerun works."""
    root = small
    disk = tmpfs("tfs", "200k")
    cmd = [sys.executable, "-m", "vsslkit", "pretrain", "--data", str(root), "--store", str(disk.path),
           "--out", str(tmp_path / "run"), "--steps", "1", *TINY]
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"vsslkit: {disk.path}: no space left on device"), err
    assert "unreadable" not in proc.stdout and "too short" not in proc.stdout + proc.stderr
    assert leftovers(disk.path) == []
    disk.resize("64m")
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pretrained 1 steps" in proc.stdout and "unreadable" not in proc.stdout


def test_synthetic_on_a_real_full_disk(tmpfs, tmp_path):
    disk = tmpfs("tfs", "200k")
    proc = subprocess.run([sys.executable, "-m", "vsslkit", "data", "synthetic", "--out", str(disk.path / "syn"),
                           "--videos-per-class", "7", "--size", "32", "--min-length", "24", "--max-length", "32",
                           "--workers", "2", "--no-progress"], env=ENV, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and f"{disk.path / 'syn'}: no space left on device" in err[0], err
    assert leftovers(disk.path) == [] and not (disk.path / "syn" / "synthetic.json").exists()


# ----------------------------------------------------------------------------- kill -9 and exact resume

# Every pretraining branch; a method adds its flags here as it lands.
BRANCHES = [
    pytest.param([], id="plain"),
    pytest.param(["--contrastive", "--queue-size", "16"], id="moco"),  # queue, key encoder, shuffle-BN generator state
    pytest.param(["--task", "arrow-of-time"], id="arrow-of-time"),
    # bank, live and published neighbour tables, refresh counter, EMA targets; batch 16 makes an epoch
    # ~4 steps, so tables are refreshed and published to the loader inside the 8 steps
    pytest.param(["--task", "ascnet", "--batch-size", "16", "--refresh-every", "2", "--head-hidden", "16",
                  "--head-dim", "8"], id="ascnet"),
    # n clips through one forward (BN over the tuple); --speeds overrides TINY's --speed-pool
    pytest.param(["--task", "playback-order", "--clips", "3", "--speeds", "-3", "1", "3"], id="playback-order"),
    pytest.param(["--task", "playback-order", "--clips", "3", "--speeds", "-3", "1", "3", "--contrastive",
                  "--queue-size", "16"], id="playback-order-moco"),
    pytest.param(["--task", "playback-speed", "--speeds", "-3", "1", "3"], id="playback-speed"),
    # flow cache built by two runs at once, labels from augmented pixels, curriculum sampler state
    pytest.param(["--task", "statistics", "--speed-pool", "--curriculum", "0.5"], id="statistics"),
    # T3's control: one half of the videos for the whole run (the curriculum's sampler without a switch)
    pytest.param(["--task", "statistics", "--speed-pool", "--video-half", "hard"], id="statistics-hard-half"),
    # per-group running statistics of temporal group norm (8 frames, g=4: 2, 2, 2, 1, ... groups per layer)
    pytest.param(["--norm", "tgn", "--tgn-group-frames", "4"], id="tgn-g4"),
]
STEPS = 8


def _pretrain(synthetic, out: Path, flags: list[str]) -> subprocess.Popen:
    root, store = synthetic
    cmd = [sys.executable, "-m", "vsslkit", "pretrain", "--data", str(root), "--store", str(store), "--out", str(out),
           "--steps", str(STEPS), "--checkpoint-every", "1", "--log-every", "1", *TINY, *flags]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _rows(out: Path) -> int:
    try:
        return max(0, len((out / "metrics.csv").read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize("flags", BRANCHES)
def test_kill_9_at_a_random_step_then_resume_is_bit_identical(synthetic, tmp_path, flags):
    _kill_9_then_resume(lambda out: _pretrain(synthetic, out, flags), tmp_path)


# seed 001's joint from-scratch run (`train-joint`): classification + TimeCycle (its patch draws and
# affine ground truth come from the sampler's RNG) + arrow of time, every branch on
JOINT = ["--short-side", "32", "--size", "32", "--width", "0.0625", "--clip-len", "4", "--batch-size", "4",
         "--no-progress", "--no-evaluate", "--device", "cpu"]


def _train_joint(synthetic, out: Path) -> subprocess.Popen:
    root, store = synthetic
    cmd = [sys.executable, "-m", "vsslkit", "train-joint", "--data", str(root), "--store", str(store), "--out",
           str(out), "--steps", str(STEPS), "--checkpoint-every", "1", "--log-every", "1", *JOINT]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_kill_9_train_joint_then_resume_is_bit_identical(synthetic, tmp_path):
    _kill_9_then_resume(lambda out: _train_joint(synthetic, out), tmp_path)


def _kill_9_then_resume(start, tmp_path: Path) -> None:
    """`start(out)` launches a run of STEPS steps checkpointing every step; one is killed -9 at a random
    step, resumed, and its final weights compared bit for bit with an uninterrupted run's."""
    from vsslkit.train.checkpoint import load_checkpoint

    seed = int(os.environ.get("VSSLKIT_FAULT_SEED", random.randrange(10**6)))
    kill_after = random.Random(seed).randint(2, STEPS - 3)
    ref = start(tmp_path / "ref")
    killed = start(tmp_path / "killed")
    deadline = time.time() + 90
    while _rows(tmp_path / "killed") < kill_after:
        assert killed.poll() is None, killed.stdout.read()
        assert time.time() < deadline, "the run did not reach the kill step in 90 s"
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    at = load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt")["step"]
    assert at < STEPS, f"killed too late (seed {seed})"
    resumed = start(tmp_path / "killed")
    out, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0 and f"at step {at}" in out, out
    ref_out, _ = ref.communicate(timeout=120)
    assert ref.returncode == 0, ref_out
    a = load_checkpoint(tmp_path / "ref" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt")["model"]
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert a.keys() == b.keys() and not differ, f"killed after step {at} (seed {seed}): {len(differ)} tensors differ"


# ----------------------------------------------------------------------------- the CLI table


@pytest.fixture(scope="module")
def cli_files(synthetic, tmp_path_factory):
    """Finished 1-step pretrain and finetune runs, truncated checkpoints, a non-checkpoint pickle, an empty folder."""
    root, store = synthetic
    base = tmp_path_factory.mktemp("cli")
    assert main(["pretrain", "--data", str(root), "--store", str(store), "--out", str(base / "run"),
                 "--steps", "1", *TINY]) == 0
    assert main(["finetune", "--data", str(root), "--store", str(store), "--out", str(base / "ftrun"),
                 "--steps", "1", "--no-evaluate", *BASE]) == 0
    good = (base / "run" / "checkpoints" / "last.pt").read_bytes()
    (base / "truncated.pt").write_bytes(good[: len(good) // 2])
    (base / "torn" / "checkpoints").mkdir(parents=True)
    (base / "torn" / "checkpoints" / "last.pt").write_bytes(good[: len(good) // 3])
    import pickle

    (base / "not_a_checkpoint.pt").write_bytes(pickle.dumps({"x": {1, 2}}, protocol=2))
    (base / "empty").mkdir()
    return base


def _table(root: Path, store: Path, files: Path) -> list[tuple[list[str], str]]:
    data = ["--data", str(root), "--store", str(store)]
    pre = ["pretrain", *data, "--out", str(files / "new"), *TINY]
    fin = ["finetune", *data, "--out", str(files / "ft"), "--steps", "1", *BASE]
    rows = [
        ([*pre, "--batch-size", "0"], "--batch-size"),
        ([*pre, "--steps", "0"], "--steps"),
        ([*pre, "--epochs", "-1"], "--epochs"),
        ([*pre, "--clip-len", "1"], "--clip-len"),
        ([*pre, "--lr", "0"], "--lr"),
        ([*pre, "--task", "nope"], "--task nope"),
        ([*pre, "--gamma", "0.5"], "--gamma"),  # an ascnet option without --task ascnet
        ([*pre, "--task", "ascnet", "--gamma", "1.5"], "--gamma"),
        ([*pre, "--device", "tpu"], "--device"),
        ([*pre, "--tgn-group-frames", "4"], "--tgn-group-frames"),  # g with batch norm
        ([*pre, "--norm", "tgn", "--tgn-group-frames", "0"], "--tgn-group-frames"),
        ([*fin, "--label-fraction", "1.5"], "--label-fraction"),
        ([*fin, "--label-fraction", "0"], "--label-fraction"),
        ([*fin, "--label-fraction", "-1"], "--label-fraction"),
        ([*fin, "--batch-size", "0"], "--batch-size"),
        (["pretrain", "--data", str(files / "missing"), "--out", str(files / "x"), *TINY], str(files / "missing")),
        (["pretrain", "--data", str(files / "empty"), "--out", str(files / "x"), *TINY], str(files / "empty")),
        (["pretext-eval", "--checkpoint", str(files / "truncated.pt"), *data], "truncated.pt"),
        (["pretext-eval", "--checkpoint", str(files / "not_a_checkpoint.pt"), *data], "not_a_checkpoint.pt"),
        (["pretrain", *data, "--out", str(files / "torn"), "--steps", "2", *TINY], "last.pt"),  # no prev.pt
        (["pretrain", *data, "--out", str(files / "run"), "--steps", "2", *TINY, "--lr", "0.5"], "pretrain.lr"),
        (["pretrain", *data, "--out", str(files / "run"), "--steps", "2", *TINY, "--clip-len", "4"],
         "pretrain.clip_len"),
        (["pretrain", *data, "--out", str(files / "run"), "--steps", "2", *TINY, "--norm", "tgn",
          "--tgn-group-frames", "4"], "pretrain.tgn_group_frames"),
        (["finetune", *data, "--out", str(files / "ftrun"), "--steps", "2", *BASE, "--lr", "0.5"], "training.lr"),
        (["finetune", *data, "--out", str(files / "ftrun"), "--steps", "2", *BASE, "--label-fraction", "0.5"],
         "training.videos 70 -> "),
        (["data", "synthetic", "--out", str(files / "s"), "--workers", "0"], "--workers"),
        (["nonsense"], "nonsense"),
    ]
    if not torch.cuda.is_available():
        rows.append(([*pre, "--device", "cuda"], "CUDA is not available"))
    return rows


def test_cli_bad_values_are_one_line_and_exit_2(synthetic, cli_files, capsys):
    root, store = synthetic
    capsys.readouterr()
    for argv, needle in _table(root, store, cli_files):
        code = main(argv)
        assert code == 2, (argv, code)
        line = one_line_error(capsys, needle)
        assert "weights_only=False" not in line
    # resume with changed settings names every differing key and the way out
    main(["pretrain", "--data", str(root), "--store", str(store), "--out", str(cli_files / "run"), "--steps", "2",
          *TINY, "--lr", "0.5", "--batch-size", "8"])
    line = one_line_error(capsys, "pretrain.lr 0.05 -> 0.5", "pretrain.batch_size 4 -> 8", "--no-resume", "--out")
    assert "size mismatch" not in line


def test_a_bug_still_shows_its_traceback(monkeypatch):
    from vsslkit.commands import train as train_commands

    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(train_commands, "run_pretrain", broken)
    with pytest.raises(KeyError, match="a bug"):
        main(["pretrain", "--data", "d", "--out", "o"])


# ----------------------------------------------------------------------------- the smaller faults


def test_resume_with_other_settings_is_refused_in_the_library(tmp_path):
    from test_loop import TinyNet, make_loader

    from vsslkit.data.clips import BatchPreparer
    from vsslkit.train.loop import ResumeMismatchError, fit, make_optimizer

    def run(config, steps=2):
        model = TinyNet()
        return fit(model, make_loader(), optimizer=make_optimizer("sgd", model.parameters(), lr=0.1),
                   max_steps=steps, out_dir=tmp_path, prepare=BatchPreparer(crop_size=16), progress=False,
                   config=config)

    run({"a": {"lr": 0.1, "pool": (1, 2)}, "b": 1})
    run({"a": {"lr": 0.1, "pool": [1, 2]}, "b": 1}, steps=3)  # tuple vs list is the same JSON
    with pytest.raises(ResumeMismatchError, match=r"a.lr 0.1 -> 0.5, c \(unset\) -> 2\).*--no-resume"):
        run({"a": {"lr": 0.5, "pool": [1, 2]}, "b": 1, "c": 2}, steps=4)


def test_a_corrupted_last_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    from test_loop import TinyNet, make_loader

    from vsslkit.data.clips import BatchPreparer
    from vsslkit.train.checkpoint import load_checkpoint
    from vsslkit.train.loop import fit, make_optimizer

    def run(out, steps):
        torch.manual_seed(0)
        model = TinyNet(dropout=0.3)
        fit(model, make_loader(seed=3), optimizer=make_optimizer("sgd", model.parameters(), lr=0.1), max_steps=steps,
            out_dir=out, prepare=BatchPreparer(crop_size=16, seed=3), progress=False, checkpoint_every=1)

    run(tmp_path / "ref", 6)
    run(tmp_path / "torn", 4)
    last = tmp_path / "torn" / "checkpoints" / "last.pt"
    assert load_checkpoint(last.with_name("prev.pt"))["step"] == 3
    last.write_bytes(last.read_bytes()[:1000])  # torn by a failing disk or a bad copy
    capsys.readouterr()
    run(tmp_path / "torn", 6)
    assert "warning: " in capsys.readouterr().out
    a = load_checkpoint(tmp_path / "ref" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(last)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_errors_never_suggest_weights_only_false(tmp_path):
    import pickle

    from vsslkit.models.weights import read_checkpoint
    from vsslkit.train.checkpoint import load_checkpoint

    (tmp_path / "set.pt").write_bytes(pickle.dumps({"x": {1}}, protocol=2))
    (tmp_path / "text.pt").write_text("hello")
    for name in ("set.pt", "text.pt"):
        for load in (load_checkpoint, read_checkpoint):
            with pytest.raises(CheckpointError) as err:
                load(tmp_path / name)
            assert "weights_only" not in str(err.value) and "\n" not in str(err.value)
            assert str(err.value).startswith(f"{tmp_path / name}: not a loadable checkpoint")


def test_store_notices_a_file_rewritten_with_size_and_mtime_kept(tmp_path):
    from conftest import moving_square_frames

    from vsslkit.data.store import FrameStore
    from vsslkit.data.writer import write_video

    video = tmp_path / "v.avi"
    write_video(video, moving_square_frames(12, seed=1), fps=25, codec="rawvideo")
    stat = video.stat()
    store = FrameStore(tmp_path / "store", short_side=48)
    old = store.read(video, range(12))
    other = tmp_path / "other.avi"
    write_video(other, moving_square_frames(12, seed=2), fps=25, codec="rawvideo")
    assert other.stat().st_size == stat.st_size  # same size: only the content tells them apart
    video.write_bytes(other.read_bytes())
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    fresh = FrameStore(tmp_path / "store", short_side=48)
    assert not np.array_equal(fresh.read(video, range(12)), old)
    assert np.array_equal(fresh.read(video, range(12)), FrameStore(tmp_path / "s2", short_side=48).read(other, range(12)))


def test_pretrain_and_finetune_report_split_file_problems(synthetic, tmp_path, capsys):
    root, store = synthetic
    bad = tmp_path / "bad"
    (bad / "ucfTrainTestlist").mkdir(parents=True)
    (bad / "videos").symlink_to(root / "videos")
    shutil.copy(root / "ucfTrainTestlist" / "classInd.txt", bad / "ucfTrainTestlist")
    lines = (root / "ucfTrainTestlist" / "trainlist01.txt").read_text().splitlines()[:12]
    lines += ["MoveRight/v_MoveRight_g99_c01.mp4 1", "this line is malformed x y", "Nope/v_Nope_g01_c01.mp4 3"]
    (bad / "ucfTrainTestlist" / "trainlist01.txt").write_text("\n".join(lines) + "\n")
    (bad / "ucfTrainTestlist" / "testlist01.txt").write_text("MoveRight/v_MoveRight_g01_c01.mp4\n")
    capsys.readouterr()
    for command in (["pretrain"], ["finetune", "--no-evaluate"]):
        argv = [*command, "--data", str(bad), "--store", str(store), "--out", str(tmp_path / command[0]),
                "--steps", "1", *(TINY if command[0] == "pretrain" else BASE)]
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "3 problem(s) in the split files" in out, out
        assert "trainlist01.txt:13: video MoveRight/v_MoveRight_g99_c01.mp4 not found" in out
        assert "trainlist01.txt:14: cannot parse" in out and "trainlist01.txt:15: unknown class 'Nope'" in out


def test_data_check_flags_an_empty_split_file(synthetic, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(synthetic[0] / "ucfTrainTestlist", bad / "ucfTrainTestlist")
    (bad / "videos").symlink_to(synthetic[0] / "videos")
    (bad / "ucfTrainTestlist" / "trainlist03.txt").write_text("")
    assert main(["data", "check", str(bad), "--no-progress", "--min-frames", "4"]) == 1
    assert "trainlist03.txt: empty split file" in capsys.readouterr().out


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(fields[1]) == pid and b"spawn_main" in cmdline:
                kids.append(int(entry.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


_STORE_SCRIPT = """
import sys
from pathlib import Path
from vsslkit.data.store import FrameStore
paths = sorted(Path(sys.argv[1]).rglob("*.mp4"))
for i in range(100):  # rebuild forever (fresh store folders): the pool stays busy until the kill
    FrameStore(Path(sys.argv[2]) / str(i), short_side=32).build(paths, progress=False, workers=2)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("command", ["data synthetic", "frame store build"])
def test_pool_workers_die_with_their_parent_on_kill_9(synthetic, tmp_path, command):
    if command == "data synthetic":
        argv = [sys.executable, "-m", "vsslkit", "data", "synthetic", "--out", str(tmp_path / "syn"),
                "--videos-per-class", "40", "--size", "32", "--workers", "2", "--no-progress"]
    else:
        argv = [sys.executable, "-c", _STORE_SCRIPT, str(synthetic[0] / "videos"), str(tmp_path / "stores")]
    parent = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while len(workers := _children(parent.pid)) < 2:
        assert parent.poll() is None and time.time() < deadline, "no pool workers appeared"
        time.sleep(0.1)
    time.sleep(0.5)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.1)
    orphans = [w for w in workers if _alive(w)]
    for w in orphans:
        os.kill(w, signal.SIGKILL)
    assert not orphans, f"workers {orphans} outlived their parent"


def test_archives_plain_tar_and_zip_symlinks(tmp_path):
    from vsslkit.data.prepare import PrepareError, archive_kind, extract

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    with tarfile.open(tmp_path / "plain.tar", "w") as tf:
        tf.add(tmp_path / "src" / "a.txt", arcname="d/a.txt")
    assert archive_kind(tmp_path / "plain.tar") == "tar"
    assert (extract(tmp_path / "plain.tar", tmp_path / "out", log=lambda m: None) / "d" / "a.txt").read_text() == "a"

    link = zipfile.ZipInfo("d/link")
    link.external_attr = (0o120777 << 16)  # S_IFLNK
    with zipfile.ZipFile(tmp_path / "links.zip", "w") as zf:
        zf.writestr("d/a.txt", "a")
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(PrepareError, match=r"links.zip: links or special files are not extracted: \['d/link'\]"):
        extract(tmp_path / "links.zip", tmp_path / "out2", log=lambda m: None)
    assert not (tmp_path / "out2" / "d" / "link").exists()


def test_a_truncated_mp4_is_flagged_by_probe_and_check(tmp_path, capsys):
    import av
    from conftest import moving_square_frames

    from vsslkit.data.writer import write_video

    full = write_video(tmp_path / "full.mp4", moving_square_frames(60), fps=25)
    faststart = tmp_path / "ds" / "Move" / "v_Move_g01_c01.mp4"  # index first, so half the file still decodes
    faststart.parent.mkdir(parents=True)
    with av.open(str(full)) as src, av.open(str(faststart), "w", options={"movflags": "faststart"}) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    data = faststart.read_bytes()
    faststart.write_bytes(data[: len(data) // 2])
    assert main(["data", "probe", str(faststart)]) == 0
    line = capsys.readouterr().out.strip()
    assert "WARNING only" in line and "of 60 declared frames decoded" in line, line
    main(["data", "check", str(tmp_path / "ds"), "--no-progress", "--min-frames", "4", "--report-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "decoded with warnings" in out and "of 60 declared frames decoded" in out, out
