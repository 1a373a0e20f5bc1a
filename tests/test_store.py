"""vsslkit.data.store: read correctness, rebuilds, crash safety, concurrent builds, workers."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import moving_square_frames

from vsslkit.data.store import FrameStore, StoredVideo
from vsslkit.data.video import VideoError, decode
from vsslkit.data.writer import write_video


def _store_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def _undecodable(path: Path) -> Path:
    """A Matroska file whose mpeg4 stream holds only garbage packets: 0 decodable frames."""
    rng = np.random.default_rng(0)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        container.start_encoding()
        for i in range(5):
            packet = av.Packet(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
            packet.stream, packet.pts, packet.dts = stream, i, i
            packet.time_base = stream.codec_context.time_base
            container.mux(packet)
    return path


@pytest.fixture
def video(tmp_path) -> Path:
    """40 frames, 40x64 (so short side 32 halves it), square moving 1 px/frame."""
    return write_video(tmp_path / "src" / "clip.mp4", moving_square_frames(40, size=64)[:, :40], crf=0)


def test_ensure_and_read_match_decode(tmp_path, video):
    store = FrameStore(tmp_path / "store", short_side=32)
    info = store.ensure(video)
    assert info == StoredVideo(num_frames=40, height=32, width=51, fps=25.0)
    assert store.num_frames(video) == 40
    full = decode(video, short_side=32)
    for idx in ([0, 1, 2], [39, 20, 20, 0], list(range(39, -1, -3)), []):
        out = store.read(video, idx)
        assert out.dtype == np.uint8 and out.shape == (len(idx), 32, 51, 3)
        np.testing.assert_array_equal(out, full[idx])
    np.testing.assert_array_equal(store.read(video, np.arange(30, 5, -4)), full[30:5:-4])
    with pytest.raises(IndexError, match=f"{video}: frame index 40 out of range for 40"):
        store.read(video, [0, 40])
    with pytest.raises(IndexError, match="frame index -1"):
        store.read(video, [-1])
    assert sorted(_store_files(tmp_path / "store")) == sorted(f"{store.key(video)}.{e}" for e in ("json", "lock", "npy"))
    meta = json.loads((tmp_path / "store" / f"{store.key(video)}.json").read_text())
    assert meta["source"] == str(video.resolve()) and meta["shape"] == [40, 32, 51, 3] and meta["format"] == 2


def test_key_depends_on_path_and_short_side(tmp_path, video):
    a, b = FrameStore(tmp_path / "s", short_side=32), FrameStore(tmp_path / "s", short_side=16)
    assert a.key(video) != b.key(video)
    assert a.key(video) == a.key(os.path.relpath(video))  # relative and absolute spellings agree
    assert a.ensure(video).height == 32 and b.ensure(video).height == 16


def test_rebuild_when_source_changes(tmp_path, video):
    store = FrameStore(tmp_path / "store", short_side=32)
    store.ensure(video)
    first = store.read(video, [5])
    npy = tmp_path / "store" / f"{store.key(video)}.npy"
    inode = npy.stat().st_ino
    store.ensure(video)
    assert npy.stat().st_ino == inode  # unchanged source: no rebuild

    stat = video.stat()
    write_video(video, moving_square_frames(25, size=64, seed=3)[:, :40], crf=0)
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert store.ensure(video).num_frames == 25
    assert npy.stat().st_ino != inode
    assert not np.array_equal(store.read(video, [5]), first)  # the cached memmap was dropped
    np.testing.assert_array_equal(store.read(video, [5]), decode(video, indices=[5], short_side=32))

    fresh = FrameStore(tmp_path / "store", short_side=32)  # another process sees the new version
    assert fresh.num_frames(video) == 25


def test_mtime_change_alone_triggers_rebuild(tmp_path, video):
    store = FrameStore(tmp_path / "store", short_side=32)
    store.ensure(video)
    npy = tmp_path / "store" / f"{store.key(video)}.npy"
    inode = npy.stat().st_ino
    os.utime(video, ns=(0, 10**18))
    store.ensure(video)
    assert npy.stat().st_ino != inode


@pytest.mark.parametrize("damage", ["no_json", "truncated_npy", "bad_json", "temp_leftovers", "old_format"])
def test_damaged_store_is_not_taken_as_valid(tmp_path, video, damage):
    store = FrameStore(tmp_path / "store", short_side=32)
    store.ensure(video)
    key, root = store.key(video), tmp_path / "store"
    if damage == "no_json":
        (root / f"{key}.json").unlink()
    elif damage == "truncated_npy":
        data = (root / f"{key}.npy").read_bytes()
        (root / f"{key}.npy").write_bytes(data[: len(data) - 100])
    elif damage == "bad_json":
        (root / f"{key}.json").write_text('{"format": 1, "sour')
    elif damage == "temp_leftovers":  # a crashed build: temp npy written, never committed
        (root / f"{key}.json").unlink()
        (root / f"{key}.npy").unlink()
        (root / f".{key}.999.deadbeef.npy").write_bytes(b"partial")
        (root / f".{key}.999.deadbeef.raw").write_bytes(b"partial")
    elif damage == "old_format":
        meta = json.loads((root / f"{key}.json").read_text())
        (root / f"{key}.json").write_text(json.dumps({**meta, "format": 0}))
    fresh = FrameStore(root, short_side=32)
    assert fresh._valid_meta(video.resolve(), key) is None
    assert fresh.ensure(video).num_frames == 40
    np.testing.assert_array_equal(fresh.read(video, [7, 3]), decode(video, indices=[7, 3], short_side=32))
    assert _store_files(root) == sorted(f"{key}.{e}" for e in ("json", "lock", "npy"))


def _python(code: str, *args: str) -> subprocess.Popen:
    """A fresh interpreter that imports only the store (fast, and no fork of a threaded pytest)."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], stdout=subprocess.PIPE, text=True)


def test_killed_build_leaves_no_valid_store(tmp_path, video):
    root = tmp_path / "store"
    die_before_commit = """
        import os, sys
        from vsslkit.data.store import FrameStore
        real_replace = os.replace
        def replace(src, dst):  # killed just before the JSON commit
            if str(dst).endswith(".json"):
                os._exit(17)
            real_replace(src, dst)
        os.replace = replace
        FrameStore(sys.argv[1], short_side=32).ensure(sys.argv[2])
    """
    assert _python(die_before_commit, str(root), str(video)).wait(60) == 17
    store = FrameStore(root, short_side=32)
    key = store.key(video)
    assert (root / f"{key}.npy").exists() and not (root / f"{key}.json").exists()  # died mid-way
    assert any(name.startswith(f".{key}.") for name in _store_files(root))  # its temp JSON
    assert store._valid_meta(video.resolve(), key) is None
    assert store.ensure(video).num_frames == 40
    assert _store_files(root) == sorted(f"{key}.{e}" for e in ("json", "lock", "npy"))


def test_two_processes_build_the_same_video(tmp_path, video):
    root, go = tmp_path / "store", tmp_path / "go"
    ensure_on_go = """
        import os, sys, time
        from vsslkit.data.store import FrameStore
        store = FrameStore(sys.argv[1], short_side=32)
        while not os.path.exists(sys.argv[3]):
            time.sleep(0.005)
        info = store.ensure(sys.argv[2])
        print(info.num_frames, os.stat(os.path.join(sys.argv[1], store.key(sys.argv[2]) + ".npy")).st_ino)
    """
    procs = [_python(ensure_on_go, str(root), str(video), str(go)) for _ in range(2)]
    time.sleep(1.0)  # both interpreters are up and polling
    go.touch()
    got = [p.communicate(timeout=60)[0].split() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    store = FrameStore(root, short_side=32)
    key = store.key(video)
    final_inode = (root / f"{key}.npy").stat().st_ino
    assert got == [["40", str(final_inode)]] * 2  # one build; the other process found it committed
    assert _store_files(root) == sorted(f"{key}.{e}" for e in ("json", "lock", "npy"))
    np.testing.assert_array_equal(store.read(video, range(40)), decode(video, short_side=32))


def test_build_reports_bad_videos_and_continues(tmp_path, video):
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "text.avi").write_text("not a video\n")
    empty = _undecodable(tmp_path / "garbage.mkv")
    paths = [tmp_path / "zero.mp4", video, tmp_path / "text.avi", empty, tmp_path / "missing.mp4"]
    store = FrameStore(tmp_path / "store", short_side=32)
    report = store.build(paths, progress=False)
    assert report.ok == [video]
    reasons = dict(report.skipped)
    assert list(reasons) == [p for p in paths if p != video]
    assert "empty file" in reasons[tmp_path / "zero.mp4"]
    assert "not a readable video container" in reasons[tmp_path / "text.avi"]
    assert "no decodable frames" in reasons[empty]
    assert "file not found" in reasons[tmp_path / "missing.mp4"]
    assert "4 skipped" in report.summary() and str(empty) in report.summary()
    with pytest.raises(VideoError, match="no decodable frames"):
        store.ensure(empty)


def test_build_with_workers_matches_serial(tmp_path):
    paths = [write_video(tmp_path / f"v{i}.mp4", moving_square_frames(12 + i, size=32, seed=i)) for i in range(3)]
    (tmp_path / "bad.mp4").write_bytes(b"junk" * 100)
    report = FrameStore(tmp_path / "par", short_side=16).build([*paths, tmp_path / "bad.mp4"], progress=False, workers=2)
    assert report.ok == paths and [p for p, _ in report.skipped] == [tmp_path / "bad.mp4"]
    serial = FrameStore(tmp_path / "ser", short_side=16)
    parallel = FrameStore(tmp_path / "par", short_side=16)
    for p in paths:
        np.testing.assert_array_equal(parallel.read(p, range(12)), serial.read(p, range(12)))


class _Clips(torch.utils.data.Dataset):
    def __init__(self, store: FrameStore, video: Path):
        self.store, self.video = store, video

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.store.read(self.video, [i, i + 10, i]))


def test_store_works_in_dataloader_workers(tmp_path, video):
    store = FrameStore(tmp_path / "store", short_side=32)
    store.read(video, [0])  # parent opened (and cached) the memmap before the workers start
    assert len(pickle.dumps(store)) < 500  # spawned workers get no copy of the cached frames
    assert pickle.loads(pickle.dumps(store))._cache == {}
    loader = torch.utils.data.DataLoader(_Clips(store, video), batch_size=4, num_workers=2, multiprocessing_context="fork")
    batches = torch.cat(list(loader)).numpy()
    full = decode(video, short_side=32)
    np.testing.assert_array_equal(batches, np.stack([full[[i, i + 10, i]] for i in range(8)]))
