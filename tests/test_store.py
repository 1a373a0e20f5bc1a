"""Frame stores (raw and JPEG, one suite): read correctness, rebuilds, crash safety, full disk,
concurrent builds, workers."""

from __future__ import annotations

import errno
import json
import os
import pickle
import signal
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

from vsslkit.data.jpeg_file import jpeg_roundtrip
from vsslkit.data.store import FrameStore, StoredVideo
from vsslkit.data.stores import open_store
from vsslkit.data.video import VideoError, decode
from vsslkit.data.writer import write_video
from vsslkit.errors import DiskFullError

QUALITY = 90


@pytest.fixture(params=["raw", "jpeg"])
def fmt(request) -> str:
    return request.param


def _open(root: Path, fmt: str, short_side: int = 32) -> FrameStore:
    return open_store(root, format=fmt, short_side=short_side, quality=QUALITY)


def _expected(frames: np.ndarray, fmt: str) -> np.ndarray:
    """What a store of `fmt` must return for these decoded frames: exact, or their JPEG round trip."""
    return frames if fmt == "raw" else jpeg_roundtrip(frames, QUALITY)


def _committed(store: FrameStore, video: Path) -> list[str]:
    return sorted(f"{store.key(video)}.{e}" for e in ("json", "lock", store.suffix))


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


def test_ensure_and_read_match_decode(tmp_path, video, fmt):
    store = _open(tmp_path / "store", fmt)
    info = store.ensure(video)
    assert info == StoredVideo(num_frames=40, height=32, width=51, fps=25.0)
    assert store.num_frames(video) == 40
    full = _expected(decode(video, short_side=32), fmt)
    for idx in ([0, 1, 2], [39, 20, 20, 0], list(range(39, -1, -3)), []):
        out = store.read(video, idx)
        assert out.dtype == np.uint8 and out.shape == (len(idx), 32, 51, 3)
        np.testing.assert_array_equal(out, full[idx])
    np.testing.assert_array_equal(store.read(video, np.arange(30, 5, -4)), full[30:5:-4])
    with pytest.raises(IndexError, match=f"{video}: frame index 40 out of range for 40"):
        store.read(video, [0, 40])
    with pytest.raises(IndexError, match="frame index -1"):
        store.read(video, [-1])
    with pytest.raises(ValueError, match="1-D sequence of integers"):
        store.read(video, [0.5])
    assert _store_files(tmp_path / "store") == _committed(store, video)
    meta = json.loads((tmp_path / "store" / f"{store.key(video)}.json").read_text())
    assert meta["source"] == str(video.resolve()) and meta["shape"] == [40, 32, 51, 3] and meta["format"] == 2
    if fmt == "jpeg":  # within JPEG error of the exact frames, and much smaller
        exact = decode(video, short_side=32).astype(float)
        psnr = 10 * np.log10(255**2 / np.mean((store.read(video, range(40)) - exact) ** 2))
        assert psnr > 30 and meta["quality"] == QUALITY
        assert (tmp_path / "store" / f"{store.key(video)}.jpgs").stat().st_size < exact.size / 4


def test_raw_and_jpeg_share_a_folder(tmp_path, video):
    raw, jpeg = _open(tmp_path / "s", "raw"), _open(tmp_path / "s", "jpeg")
    q50 = open_store(tmp_path / "s", format="jpeg", short_side=32, quality=50)
    assert len({raw.key(video), jpeg.key(video), q50.key(video)}) == 3
    for s in (raw, jpeg, q50):
        s.ensure(video)
    assert raw._valid_meta(video.resolve(), raw.key(video)) and jpeg._valid_meta(video.resolve(), jpeg.key(video))
    assert not np.array_equal(jpeg.read(video, [3]), q50.read(video, [3]))
    np.testing.assert_array_equal(raw.read(video, [3]), decode(video, indices=[3], short_side=32))
    with pytest.raises(ValueError, match="unknown store format 'png'"):
        open_store(tmp_path / "s", format="png")
    with pytest.raises(ValueError, match="quality must be in 1..100"):
        open_store(tmp_path / "s", format="jpeg", quality=0)


def test_key_depends_on_path_and_short_side(tmp_path, video, fmt):
    a, b = _open(tmp_path / "s", fmt, 32), _open(tmp_path / "s", fmt, 16)
    assert a.key(video) != b.key(video)
    assert a.key(video) == a.key(os.path.relpath(video))  # relative and absolute spellings agree
    assert a.ensure(video).height == 32 and b.ensure(video).height == 16


def test_rebuild_when_source_changes(tmp_path, video, fmt):
    store = _open(tmp_path / "store", fmt)
    store.ensure(video)
    first = store.read(video, [5])
    npy = tmp_path / "store" / f"{store.key(video)}.{store.suffix}"
    inode = npy.stat().st_ino
    store.ensure(video)
    assert npy.stat().st_ino == inode  # unchanged source: no rebuild

    stat = video.stat()
    write_video(video, moving_square_frames(25, size=64, seed=3)[:, :40], crf=0)
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert store.ensure(video).num_frames == 25
    assert npy.stat().st_ino != inode
    assert not np.array_equal(store.read(video, [5]), first)  # the cached memmap was dropped
    np.testing.assert_array_equal(store.read(video, [5]), _expected(decode(video, indices=[5], short_side=32), fmt))

    fresh = _open(tmp_path / "store", fmt)  # another process sees the new version
    assert fresh.num_frames(video) == 25


def test_mtime_change_alone_triggers_rebuild(tmp_path, video, fmt):
    store = _open(tmp_path / "store", fmt)
    store.ensure(video)
    npy = tmp_path / "store" / f"{store.key(video)}.{store.suffix}"
    inode = npy.stat().st_ino
    os.utime(video, ns=(0, 10**18))
    store.ensure(video)
    assert npy.stat().st_ino != inode


@pytest.mark.parametrize("damage", ["no_json", "truncated_npy", "bad_json", "temp_leftovers", "old_format"])
def test_damaged_store_is_not_taken_as_valid(tmp_path, video, damage, fmt):
    store = _open(tmp_path / "store", fmt)
    store.ensure(video)
    key, root, data = store.key(video), tmp_path / "store", store.suffix
    if damage == "no_json":
        (root / f"{key}.json").unlink()
    elif damage == "truncated_npy":
        content = (root / f"{key}.{data}").read_bytes()
        (root / f"{key}.{data}").write_bytes(content[: len(content) - 100])
    elif damage == "bad_json":
        (root / f"{key}.json").write_text('{"format": 1, "sour')
    elif damage == "temp_leftovers":  # a crashed build: temp npy written, never committed
        (root / f"{key}.json").unlink()
        (root / f"{key}.{data}").unlink()
        (root / f".{key}.999.deadbeef.{data}").write_bytes(b"partial")
        (root / f".{key}.999.deadbeef.raw").write_bytes(b"partial")
    elif damage == "old_format":
        meta = json.loads((root / f"{key}.json").read_text())
        (root / f"{key}.json").write_text(json.dumps({**meta, "format": 0}))
    fresh = _open(root, fmt)
    assert fresh._valid_meta(video.resolve(), key) is None
    assert fresh.ensure(video).num_frames == 40
    np.testing.assert_array_equal(fresh.read(video, [7, 3]), _expected(decode(video, indices=[7, 3], short_side=32), fmt))
    assert _store_files(root) == _committed(fresh, video)


def _python(code: str, *args: str) -> subprocess.Popen:
    """A fresh interpreter that imports only the store (fast, and no fork of a threaded pytest)."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], stdout=subprocess.PIPE, text=True)


def test_killed_build_leaves_no_valid_store(tmp_path, video, fmt):
    root = tmp_path / "store"
    die_before_commit = """
        import os, sys
        from vsslkit.data.stores import open_store
        real_replace = os.replace
        def replace(src, dst):  # killed just before the JSON commit
            if str(dst).endswith(".json"):
                os._exit(17)
            real_replace(src, dst)
        os.replace = replace
        open_store(sys.argv[1], format=sys.argv[3], short_side=32).ensure(sys.argv[2])
    """
    assert _python(die_before_commit, str(root), str(video), fmt).wait(60) == 17
    store = _open(root, fmt)
    key = store.key(video)
    assert (root / f"{key}.{store.suffix}").exists() and not (root / f"{key}.json").exists()  # died mid-way
    assert any(name.startswith(f".{key}.") for name in _store_files(root))  # its temp JSON
    assert store._valid_meta(video.resolve(), key) is None
    assert store.ensure(video).num_frames == 40
    assert _store_files(root) == _committed(store, video)


def test_kill_9_mid_build_leaves_no_valid_store(tmp_path, video, fmt):
    """SIGKILL while frames are being written (a line on stdout says so), then a clean rebuild."""
    root = tmp_path / "store"
    stall_mid_build = """
        import sys, time
        from vsslkit.data import store
        from vsslkit.data.stores import open_store
        real, seen = store.to_rgb, []
        def to_rgb(frame, **kw):  # frame 20 of 40: half the frames are in the temp file
            seen.append(1)
            if len(seen) == 20:
                print("mid-build", flush=True)
                time.sleep(600)
            return real(frame, **kw)
        store.to_rgb = to_rgb
        open_store(sys.argv[1], format=sys.argv[3], short_side=32).ensure(sys.argv[2])
    """
    proc = _python(stall_mid_build, str(root), str(video), fmt)
    try:
        assert proc.stdout.readline().strip() == "mid-build"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        proc.kill()
    store = _open(root, fmt)
    key = store.key(video)
    assert not (root / f"{key}.json").exists() and any(n.startswith(f".{key}.") for n in _store_files(root))
    assert store._valid_meta(video.resolve(), key) is None
    assert store.ensure(video).num_frames == 40
    assert _store_files(root) == _committed(store, video)  # the killed build's temp files are gone
    np.testing.assert_array_equal(store.read(video, [39, 0]), _expected(decode(video, indices=[39, 0], short_side=32), fmt))


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_enospc_at_fsync_commits_nothing(tmp_path, video, fmt, monkeypatch):
    """Filesystems with delayed allocation report a full disk only at fsync: nothing is trusted."""
    store = _open(tmp_path / "store", fmt)
    monkeypatch.setattr(os, "fsync", _no_space)
    with pytest.raises(DiskFullError, match="no space left on device"):
        store.ensure(video)
    key = store.key(video)
    assert not (tmp_path / "store" / f"{key}.json").exists()
    assert _store_files(tmp_path / "store") == [f"{key}.lock"]  # no temp file left behind
    monkeypatch.undo()
    assert store.ensure(video).num_frames == 40


@pytest.fixture
def small_disk(tmp_path):
    """A 64 kB tmpfs (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                                           capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_gives_a_clear_error_and_commits_nothing(tmp_path, small_disk, fmt):
    """A real full filesystem (40 frames do not fit in 64 kB in either format)."""
    frames = np.concatenate([moving_square_frames(40, size=64, seed=s)[:, :40] for s in range(3)])
    big = write_video(tmp_path / "src" / "big.mp4", frames, crf=0)  # 120 frames of noise-free squares
    store = _open(small_disk / "store", fmt)
    with pytest.raises(DiskFullError, match=f"{small_disk / 'store'}: no space left on device.*big.mp4"):
        store.ensure(big)
    key = store.key(big)
    assert store._valid_meta(big.resolve(), key) is None
    assert _store_files(small_disk / "store") == [f"{key}.lock"]
    with pytest.raises(DiskFullError):  # a full disk is not a bad video: the build stops, nothing is skipped
        store.build([big], progress=False)


def test_two_processes_build_the_same_video(tmp_path, video, fmt):
    root, go = tmp_path / "store", tmp_path / "go"
    ensure_on_go = """
        import os, sys, time
        from vsslkit.data.stores import open_store
        store = open_store(sys.argv[1], format=sys.argv[4], short_side=32)
        while not os.path.exists(sys.argv[3]):
            time.sleep(0.005)
        info = store.ensure(sys.argv[2])
        print(info.num_frames, os.stat(os.path.join(sys.argv[1], store.key(sys.argv[2]) + "." + store.suffix)).st_ino)
    """
    procs = [_python(ensure_on_go, str(root), str(video), str(go), fmt) for _ in range(2)]
    time.sleep(1.0)  # both interpreters are up and polling
    go.touch()
    got = [p.communicate(timeout=60)[0].split() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    store = _open(root, fmt)
    key = store.key(video)
    final_inode = (root / f"{key}.{store.suffix}").stat().st_ino
    assert got == [["40", str(final_inode)]] * 2  # one build; the other process found it committed
    assert _store_files(root) == _committed(store, video)
    np.testing.assert_array_equal(store.read(video, range(40)), _expected(decode(video, short_side=32), fmt))


def test_build_reports_bad_videos_and_continues(tmp_path, video, fmt):
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "text.avi").write_text("not a video\n")
    empty = _undecodable(tmp_path / "garbage.mkv")
    paths = [tmp_path / "zero.mp4", video, tmp_path / "text.avi", empty, tmp_path / "missing.mp4"]
    store = _open(tmp_path / "store", fmt)
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


def test_build_with_workers_matches_serial(tmp_path, fmt):
    paths = [write_video(tmp_path / f"v{i}.mp4", moving_square_frames(12 + i, size=32, seed=i)) for i in range(3)]
    (tmp_path / "bad.mp4").write_bytes(b"junk" * 100)
    report = _open(tmp_path / "par", fmt, 16).build([*paths, tmp_path / "bad.mp4"], progress=False, workers=2)
    assert report.ok == paths and [p for p, _ in report.skipped] == [tmp_path / "bad.mp4"]
    serial = _open(tmp_path / "ser", fmt, 16)
    parallel = _open(tmp_path / "par", fmt, 16)
    for p in paths:
        np.testing.assert_array_equal(parallel.read(p, range(12)), serial.read(p, range(12)))


class _Clips(torch.utils.data.Dataset):
    def __init__(self, store: FrameStore, video: Path):
        self.store, self.video = store, video

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.store.read(self.video, [i, i + 10, i]))


def test_store_works_in_dataloader_workers(tmp_path, video, fmt):
    store = _open(tmp_path / "store", fmt)
    store.read(video, [0])  # parent opened (and cached) the memmap before the workers start
    assert len(pickle.dumps(store)) < 500  # spawned workers get no copy of the cached frames
    assert len(pickle.loads(pickle.dumps(store))._cache) == 0
    loader = torch.utils.data.DataLoader(_Clips(store, video), batch_size=4, num_workers=2, multiprocessing_context="fork")
    batches = torch.cat(list(loader)).numpy()
    full = _expected(decode(video, short_side=32), fmt)
    np.testing.assert_array_equal(batches, np.stack([full[[i, i + 10, i]] for i in range(8)]))


def test_store_format_flags_and_auto(tmp_path):
    """`--store-format auto` follows what `data prepare` recorded; bad flags exit 2 via argparse."""
    import argparse

    from vsslkit.commands.store_args import add_store_format_arguments, open_store_from_args
    from vsslkit.data.jpeg_store import JpegFrameStore
    from vsslkit.data.stores import record_format

    parser = argparse.ArgumentParser()
    parser.add_argument("--short-side", type=int, default=32)
    add_store_format_arguments(parser, default="auto")
    args = parser.parse_args([])
    assert type(open_store_from_args(args, tmp_path / "s", dataset_root=tmp_path)) is FrameStore  # nothing recorded
    record_format(tmp_path, format="jpeg", quality=75, short_side=32)
    store = open_store_from_args(args, tmp_path / "s", dataset_root=tmp_path)
    assert isinstance(store, JpegFrameStore) and store.quality == 75
    forced = open_store_from_args(parser.parse_args(["--store-format", "raw"]), tmp_path / "s", dataset_root=tmp_path)
    assert type(forced) is FrameStore
    assert open_store_from_args(parser.parse_args(["--jpeg-quality", "60"]), tmp_path / "s", tmp_path).quality == 60
    for bad in (["--jpeg-quality", "0"], ["--jpeg-quality", "x"], ["--store-format", "png"]):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(bad)
        assert exit_info.value.code == 2


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors through /proc")
def test_open_maps_are_bounded_and_videos_are_validated_once(tmp_path, video, fmt, monkeypatch):
    """Each open memmap holds a file descriptor (CPython's mmap keeps a duplicate), so a store that
    kept every video it ever read mapped would run out of descriptors on a 13k-video dataset: the
    store keeps only the most recently read maps open, reopens an evicted one with the same frames,
    and validates a video (`ensure`: stat, digest, JSON) once per process, not at every reopen."""
    import shutil

    from vsslkit.data.open_maps import OpenMaps, default_capacity

    copies = [shutil.copy(video, tmp_path / "src" / f"copy{i}.mp4") for i in range(6)]
    store = _open(tmp_path / "store", fmt)
    store._cache = OpenMaps(capacity=2)
    counts = [store.num_frames(p) for p in copies]  # validates each copy once (as a dataset does)
    ensured = []
    real_ensure = type(store).ensure
    monkeypatch.setattr(type(store), "ensure", lambda self, p: ensured.append(p) or real_ensure(self, p))
    before = _open_descriptors()
    first = [store.read(p, [0, 5]) for p in copies]
    assert len(store._cache) == 2 and _open_descriptors() <= before + 2  # not one per video read
    again = store.read(copies[0], [0, 5])  # evicted long ago: mapped again, same frames
    assert np.array_equal(again, first[0]) and counts == [40] * 6
    assert ensured == []  # num_frames validated them; reopening does not validate again
    fresh = _open(tmp_path / "store", fmt)
    fresh.read(copies[1], [1])
    assert len(ensured) == 1  # a new store (a spawned worker) validates before its first read
    assert 16 <= default_capacity() <= 1024
    with pytest.raises(ValueError, match="capacity"):
        OpenMaps(capacity=0)


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_NOFILE is POSIX")
def test_a_store_reads_more_videos_than_the_open_file_limit(tmp_path, fmt):
    """The end-to-end case the bound exists for: a process limited to 64 open files reads 120
    stored videos (the code before the bound stopped at the 58th with "Too many open files")."""
    script = textwrap.dedent(f"""
        import resource, shutil, sys
        from pathlib import Path
        import numpy as np
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        from vsslkit.data.stores import open_store
        from vsslkit.data.writer import write_video
        tmp = Path({str(tmp_path)!r})
        frames = np.random.default_rng(0).integers(0, 255, size=(20, 32, 40, 3), dtype=np.uint8)
        source = write_video(tmp / "v.mp4", frames, crf=28)
        paths = [shutil.copy(source, tmp / f"v{{i}}.mp4") for i in range(120)]
        store = open_store(tmp / "store", format={fmt!r}, short_side=32)
        assert not store.build(paths, progress=False).skipped
        assert [store.num_frames(p) for p in paths] == [20] * 120
        reads = [store.read(p, [0, 19]) for p in paths] + [store.read(paths[0], [0, 19])]
        assert np.array_equal(reads[0], reads[-1])
        print("read", len(reads))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0 and "read 121" in result.stdout, result.stdout + result.stderr


def test_validation_reads_no_content_unless_the_ctime_moved(tmp_path, video, fmt, monkeypatch):
    """Starting a run validates every video: the content digest (up to 2 MiB read per video) is
    needed only when the file's ctime or inode moved; a rewrite with size and mtime restored moves the
    ctime (the kernel sets it on writes and on utime), so it is still caught."""
    import vsslkit.data.store as store_module

    store = _open(tmp_path / "store", fmt)
    store.ensure(video)
    key = store.key(video)
    digests = []
    real_digest = store_module._content_digest
    monkeypatch.setattr(store_module, "_content_digest", lambda source: digests.append(source) or real_digest(source))
    source = store_module._absolute(video)
    assert store._valid_meta(source, key) is not None and digests == []  # unchanged: stat only

    time.sleep(0.02)  # past the timestamp granularity
    os.chmod(video, 0o640)  # ctime moves, content does not: the digest decides, and keeps the record
    assert store._valid_meta(source, key) is not None and len(digests) == 1

    stat = video.stat()
    data = bytearray(video.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other content (first MiB of a small file)
    time.sleep(0.02)
    video.write_bytes(bytes(data))
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # mtime restored
    assert video.stat().st_size == stat.st_size and video.stat().st_mtime_ns == stat.st_mtime_ns
    assert store._valid_meta(source, key) is None  # stale: rebuilt at the next ensure


def test_map_frames_reads_the_npy_data_without_parsing_its_header(tmp_path):
    from vsslkit.data.store import _map_frames

    frames = np.random.default_rng(0).integers(0, 255, size=(5, 6, 7, 3), dtype=np.uint8)
    np.save(tmp_path / "v.npy", frames)
    mapped = _map_frames(tmp_path / "v.npy", frames.shape)
    assert np.array_equal(mapped, frames) and not mapped.flags.writeable
    with open(tmp_path / "v.npy", "r+b") as f:
        f.truncate(os.path.getsize(tmp_path / "v.npy") - frames.size)  # the data gone, the header kept
    with pytest.raises(ValueError, match="too short for frames of shape"):
        _map_frames(tmp_path / "v.npy", frames.shape)
