"""The flow cache: correct flow, the frame store's guarantees (rebuild on change, kill -9, full disk,
concurrent builders, bad videos skipped), int8 storage."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from vsslkit.data.flow_cache import FLOW_STEP, FlowCache, FlowEstimator, dequantise, quantise, tvl1_available
from vsslkit.data.store import FrameStore
from vsslkit.data.writer import write_video
from vsslkit.errors import DiskFullError


def textured_square(num_frames: int = 24, size: int = 48, step: tuple[int, int] = (1, 0), seed: int = 0) -> np.ndarray:
    """A textured 14 px square moving `step` = (dx, dy) px/frame over a static smooth background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    background = (40 + 20 * np.sin(xx / 5.0) + 20 * np.cos(yy / 7.0)).astype(np.uint8)
    texture = rng.integers(120, 255, size=(14, 14), dtype=np.uint8)
    texture = np.kron(texture[::2, ::2], np.ones((2, 2), dtype=np.uint8))  # 2 px texels
    frames = np.repeat(np.repeat(background[None, :, :, None], 3, axis=3), num_frames, axis=0)
    for t in range(num_frames):
        y, x = (17 if step[1] == 0 else 4) + step[1] * t, (8 if step[0] >= 0 else 30) + step[0] * t
        frames[t, y : y + 14, x : x + 14] = texture[:, :, None]
    return frames


@pytest.fixture
def video(tmp_path) -> Path:
    return write_video(tmp_path / "src" / "square.mp4", textured_square(), crf=0)


def _cache(tmp_path: Path, **kw) -> FlowCache:
    return FlowCache(FrameStore(tmp_path / "store", short_side=48), **kw)


def _files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def _committed(cache: FlowCache, video: Path) -> list[str]:
    return sorted(f"{cache.key(video)}.{e}" for e in ("json", "lock", "npy"))


@pytest.mark.parametrize("method", ["farneback", "dis"])
def test_flow_of_a_moving_square(tmp_path, video, method):
    cache = _cache(tmp_path, method=method)
    flow = cache.read(video, [3, 4, 5, 6])
    assert flow.shape == (3, 48, 48, 2) and flow.dtype == np.float32
    inside = flow[:, 21:27, 14:20]  # the square's interior at frames 3-5 (x from 11 to 13)
    assert abs(float(np.median(inside[..., 0])) - 1.0) < 0.3  # u: right 1 px/frame
    assert abs(float(np.median(inside[..., 1]))) < 0.3  # v: no vertical motion
    assert np.abs(flow[:, 40:, :, :]).max() < 0.5  # the static background below it
    assert _files(cache.root) == _committed(cache, video)
    np.testing.assert_array_equal(np.load(cache.root / f"{cache.key(video)}.npy")[3:6],
                                  quantise(FlowEstimator(method).video(cache.frames.read(video, [3, 4, 5, 6])))[0])


def test_quantisation_error_is_below_a_sixteenth_of_a_pixel():
    flow = np.random.default_rng(0).uniform(-15, 15, size=(2, 8, 8, 2)).astype(np.float32)
    q, clipped = quantise(flow)
    assert q.dtype == np.int8 and clipped == 0
    assert np.abs(dequantise(q) - flow).max() <= FLOW_STEP / 2 + 1e-6
    assert quantise(np.array([40.0, -40.0]))[1] == 2  # clipped values are counted


def test_read_needs_consecutive_frames(tmp_path, video):
    cache = _cache(tmp_path)
    with pytest.raises(ValueError, match="consecutive"):
        cache.read(video, [0, 2, 4])
    with pytest.raises(ValueError, match="consecutive"):
        cache.read(video, [5, 4])
    with pytest.raises(IndexError, match="outside"):
        cache.read(video, [22, 23, 24])


def test_tvl1_is_optional(tmp_path, video):
    if tvl1_available():
        pytest.skip("cv2.optflow is installed here")
    with pytest.raises(ValueError, match="cv2.optflow"):
        _cache(tmp_path, method="tvl1")


def test_rebuilt_when_the_source_changes(tmp_path, video):
    cache = _cache(tmp_path)
    before = cache.read(video, [3, 4])
    write_video(video, textured_square(step=(-1, 0)), crf=0)  # now moving left
    cache = _cache(tmp_path)
    after = cache.read(video, [3, 4])
    assert np.median(before[0, 21:27, 14:20, 0]) > 0.5 and np.median(after[0, 21:27, 30:36, 0]) < -0.5


def test_another_method_is_another_cache(tmp_path, video):
    far, dis = _cache(tmp_path), _cache(tmp_path, method="dis")
    far.ensure(video), dis.ensure(video)
    assert far.root != dis.root and far._valid_meta(far.key(video))["method"] == "farneback"


def _python(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], stdout=subprocess.PIPE, text=True)


def test_kill_9_mid_build_leaves_nothing_trusted(tmp_path, video):
    """SIGKILL while flows are being written, then a clean rebuild."""
    stall = """
        import sys, time
        from vsslkit.data import flow_cache
        from vsslkit.data.store import FrameStore
        real, seen = flow_cache.FlowEstimator.pair, []
        def pair(self, a, b):  # pair 10 of 23: half the flows are in the temp file
            seen.append(1)
            if len(seen) == 10:
                print("mid-build", flush=True)
                time.sleep(600)
            return real(self, a, b)
        flow_cache.FlowEstimator.pair = pair
        flow_cache.FlowCache(FrameStore(sys.argv[1], short_side=48)).ensure(sys.argv[2])
    """
    proc = _python(stall, str(tmp_path / "store"), str(video))
    try:
        assert proc.stdout.readline().strip() == "mid-build"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        proc.kill()
    cache = _cache(tmp_path)
    key = cache.key(video)
    assert not (cache.root / f"{key}.json").exists() and any(n.startswith(f".{key}.") for n in _files(cache.root))
    assert cache._valid_meta(key) is None
    assert cache.read(video, [0, 1]).shape == (1, 48, 48, 2)
    assert _files(cache.root) == _committed(cache, video)  # the killed build's temp files are gone


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_is_a_clear_error_and_commits_nothing(tmp_path, video, monkeypatch):
    cache = _cache(tmp_path)
    cache.frames.ensure(video)  # the frames fit; the flow does not
    monkeypatch.setattr(os, "fsync", _no_space)
    with pytest.raises(DiskFullError, match=r"flow-farneback: no space left on device.*flow cache \(square.mp4\)"):
        cache.ensure(video)
    key = cache.key(video)
    assert _files(cache.root) == [f"{key}.lock"]  # no temp file, no commit
    with pytest.raises(DiskFullError):  # a full disk stops a build; it is not the video's fault
        cache.build([video], progress=False)
    monkeypatch.undo()
    assert cache.build([video], progress=False).ok == [video]


def test_two_processes_build_once(tmp_path, video):
    go = tmp_path / "go"
    ensure_on_go = """
        import os, sys, time
        from vsslkit.data.flow_cache import FlowCache
        from vsslkit.data.store import FrameStore
        cache = FlowCache(FrameStore(sys.argv[1], short_side=48))
        while not os.path.exists(sys.argv[3]):
            time.sleep(0.005)
        cache.ensure(sys.argv[2])
        print(os.stat(cache.root / (cache.key(sys.argv[2]) + ".npy")).st_ino)
    """
    procs = [_python(ensure_on_go, str(tmp_path / "store"), str(video), str(go)) for _ in range(2)]
    time.sleep(1.0)
    go.touch()
    got = [p.communicate(timeout=120)[0].split() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    cache = _cache(tmp_path)
    assert got == [[str((cache.root / f"{cache.key(video)}.npy").stat().st_ino)]] * 2  # built once
    assert _files(cache.root) == _committed(cache, video)


def test_build_skips_bad_videos_and_matches_with_workers(tmp_path, video):
    (tmp_path / "text.avi").write_text("not a video\n")
    other = write_video(tmp_path / "src" / "other.mp4", textured_square(step=(0, 1), seed=1), crf=0)
    paths = [tmp_path / "text.avi", video, tmp_path / "missing.mp4", other]
    serial = _cache(tmp_path).build(paths, progress=False)
    assert serial.ok == [video, other]
    reasons = dict(serial.skipped)
    assert "not a readable video container" in reasons[tmp_path / "text.avi"]
    assert "file not found" in reasons[tmp_path / "missing.mp4"]
    parallel = FlowCache(FrameStore(tmp_path / "store2", short_side=48)).build(paths, progress=False, workers=2)
    assert parallel.ok == serial.ok and dict(parallel.skipped).keys() == reasons.keys()
    a, b = _cache(tmp_path), FlowCache(FrameStore(tmp_path / "store2", short_side=48))
    np.testing.assert_array_equal(a.read(other, range(24)), b.read(other, range(24)))


def test_the_flow_cache_keeps_a_bounded_number_of_maps_open(tmp_path, video):
    """Like the frame stores (tests/test_store.py): each open flow memmap holds a file descriptor,
    so only the most recently read ones stay open; an evicted one is mapped again, same values,
    without validating the video again."""
    import shutil

    from vsslkit.data.open_maps import OpenMaps

    other = Path(shutil.copy(video, video.with_name("copy.mp4")))
    cache = _cache(tmp_path)
    cache._cache = OpenMaps(capacity=1)
    first = cache.read(video, [0, 1, 2])
    cache.read(other, [0, 1, 2])
    assert len(cache._cache) == 1 and os.fspath(other) in cache._cache
    validated = []
    real_ensure = FlowCache.ensure
    cache.ensure = lambda path: validated.append(path) or real_ensure(cache, path)
    np.testing.assert_array_equal(cache.read(video, [0, 1, 2]), first)
    assert validated == []  # mapped again, not validated again (once per process, like the frame stores)
