"""The decode-once frame store: every video decoded once into a uint8 `.npy` memmap.

Random clips at any pace and direction then cost a fancy index into a memmap instead of a seek
and a decode (about 100x faster on this machine; `vsslkit bench data` measures it).

Layout under `root`, per video and short side (key = readable stem + hash of the absolute
source path and the short side):
  `<key>.npy`   uint8 `(T, h, w, 3)`, display orientation, short side resized to `short_side`
  `<key>.json`  source path, size, mtime_ns, a content digest (first and last MiB + size),
                num_frames, fps, shape, ... and a format version
  `<key>.lock`  flock'ed while building, so two processes never build the same video at once
The `.npy` is written under a temporary name and renamed; the JSON is renamed into place last
and is the commit marker: no JSON (or one that disagrees with the source's size/mtime or the
`.npy` on disk) means "not stored", so a crash mid-build is never mistaken for a valid store.
Files are written with plain `write` calls, never through a memory map: on a full disk a write
fails with ENOSPC (the build stops with one `DiskFullError` naming the store and removes its temp
files) instead of the process dying of SIGBUS. POSIX only (fcntl).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import mmap
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vsslkit.data.open_maps import OpenMaps
from vsslkit.data.video import VideoError, VideoReader, frame_rotation, to_rgb
from vsslkit.data.workers import die_with_parent
from vsslkit.errors import DiskFullError, is_disk_full

FORMAT_VERSION = 2  # 2: the record holds a content digest of the source
_COPY_CHUNK_BYTES = 64 << 20
_DIGEST_BYTES = 1 << 20


@dataclass(frozen=True)
class StoredVideo:
    """Shape and rate of one stored video (height/width after rotation and resizing)."""

    num_frames: int
    height: int
    width: int
    fps: float


@dataclass
class BuildReport:
    """Which videos are in the store, and which were skipped with the reason why."""

    ok: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{len(self.ok)} videos stored, {len(self.skipped)} skipped"]
        lines += [f"  skipped {path}: {reason}" for path, reason in self.skipped]
        return "\n".join(lines)


def default_store_dir() -> Path:
    """Where frame stores go unless told otherwise: `$VSSLKIT_STORE` or `~/.cache/vsslkit/frames`."""
    return Path(os.environ.get("VSSLKIT_STORE", Path.home() / ".cache" / "vsslkit" / "frames"))


class FrameStore:
    """Decode-once uint8 frame cache with random access; see the module docstring for layout.

    `read` validates each video once per process (`ensure`) and keeps the memmaps of the most
    recently read videos open (`OpenMaps`: a bounded number, since each holds a file descriptor);
    neither is pickled, so a store can be handed to DataLoader workers (fork or spawn). A video
    rebuilt by another process after this one opened it is read from the old (still valid) file
    while its map stays open, and from the new one once it is mapped again.
    """

    suffix = "npy"  # the data file next to `<key>.json`

    def __init__(self, root: str | os.PathLike, *, short_side: int = 128):
        if short_side < 1:
            raise ValueError(f"short_side must be >= 1, got {short_side}")
        self.root = Path(root)
        self.short_side = int(short_side)
        self.root.mkdir(parents=True, exist_ok=True)
        self._cache = OpenMaps()  # os.fspath(video_path) as given -> frames (or the JPEG store's file)
        self._ensured: dict[str, StoredVideo] = {}  # paths (as given) validated by `ensure` in this process

    def __getstate__(self) -> dict:
        return {"root": self.root, "short_side": self.short_side}

    def __setstate__(self, state: dict) -> None:
        self.root, self.short_side = state["root"], state["short_side"]
        self._cache, self._ensured = OpenMaps(), {}

    def __repr__(self) -> str:
        return f"FrameStore({str(self.root)!r}, short_side={self.short_side})"

    # ------------------------------------------------------------------ public API

    def ensure(self, video_path: str | os.PathLike) -> StoredVideo:
        """Build the video's frames if missing or stale (source size, mtime or content digest changed)."""
        source = _absolute(video_path)
        key = self.key(source)
        meta = self._valid_meta(source, key)
        if meta is None:
            self._cache.clear()  # rare; drops every spelling of this video's path
            with _locked(self.root / f"{key}.lock"):
                meta = self._valid_meta(source, key)  # another process may have built it meanwhile
                if meta is None:
                    meta = self._build(source, key)
        stored = self._ensured[os.fspath(video_path)] = _stored(meta)
        return stored

    def read(self, video_path: str | os.PathLike, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames `indices` (any order, repeats allowed) as uint8 `(len(indices), h, w, 3)`."""
        frames = self._memmap(video_path)
        idx = np.asarray(indices)
        if idx.ndim != 1 or (len(idx) and not np.issubdtype(idx.dtype, np.integer)):
            raise ValueError(f"{video_path}: frame indices must be a 1-D sequence of integers, got {idx.dtype} {idx.shape}")
        if len(idx) and (idx.min() < 0 or idx.max() >= len(frames)):
            bad = int(idx.min()) if idx.min() < 0 else int(idx.max())
            raise IndexError(f"{video_path}: frame index {bad} out of range for {len(frames)} stored frames")
        return frames[idx.astype(np.int64)]

    def num_frames(self, video_path: str | os.PathLike) -> int:
        """Number of stored (= decodable) frames; builds the video first if needed (validated once per
        process: after `build` it reads what the build validated)."""
        return self._validated(video_path).num_frames

    def build(
        self, paths: Iterable[str | os.PathLike], *, progress: bool = True, workers: int = 1
    ) -> BuildReport:
        """Store every video; a bad one is skipped with its reason, never stopping the build.

        `workers > 1` builds in that many spawned processes (the per-video lock keeps it safe).
        A full disk is not a bad video: it stops the build with a `DiskFullError`.
        """
        return build_each(_try_ensure, self, paths, desc="frame store", progress=progress, workers=workers)

    def key(self, video_path: str | os.PathLike) -> str:
        """File-name key of a video: readable stem + hash of its absolute path and short side."""
        source = _absolute(video_path)
        digest = hashlib.sha1(f"{source}\0{self.short_side}".encode()).hexdigest()[:16]
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", source.stem)[:40]
        return f"{stem}-{digest}"

    # ------------------------------------------------------------------ internals

    def _validated(self, video_path: str | os.PathLike) -> StoredVideo:
        """What `ensure` returned for this path in this process, or `ensure` now (once per process)."""
        return self._ensured.get(os.fspath(video_path)) or self.ensure(video_path)

    def _memmap(self, video_path: str | os.PathLike) -> np.ndarray:
        name = os.fspath(video_path)
        frames = self._cache.get(name)  # hot path: no hashing, no stat
        if frames is None:
            stored = self._validated(video_path)
            frames = _map_frames(self.root / f"{self.key(video_path)}.npy",
                                 (stored.num_frames, stored.height, stored.width, 3))
            self._cache.put(name, frames)
        return frames

    def _valid_meta(self, source: Path, key: str) -> dict | None:
        """The JSON record if it commits a complete `.npy` made from the current source, else None."""
        try:
            meta = json.loads((self.root / f"{key}.json").read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # unreadable or half-written by hand: rebuild
        stat = _source_stat(source)
        expected = {
            "format": FORMAT_VERSION,
            "source": str(source),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "short_side": self.short_side,
        }
        if any(meta.get(k) != v for k, v in {**expected, **self._format_fields()}.items()):
            return None
        # A file rewritten in place with its size and mtime restored has a new ctime (the kernel sets it on
        # every write and on utime): when ctime and inode are the recorded ones, the content is too, and
        # the digest (reading up to 2 MiB per video at every start) is skipped. Otherwise (a copied or
        # chmod-ed dataset, or a record from before ctime was kept) the digest decides.
        unchanged = meta.get("ctime_ns") == stat.st_ctime_ns and meta.get("inode") == stat.st_ino
        if not unchanged and meta.get("content") != _content_digest(source):
            return None
        if not self._data_matches(key, meta):
            return None
        return meta

    def _record(self, source: Path, stat: os.stat_result, content: str, count: int, shape: tuple[int, ...],
                fps: float, rotation: int, codec: str, error: str | None) -> dict:
        """The JSON a committed video gets: what it was built from (to spot a stale one) and its frames."""
        return {"format": FORMAT_VERSION, **self._format_fields(), "source": str(source), "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns, "inode": stat.st_ino, "content": content,
                "short_side": self.short_side,
                "num_frames": count, "fps": fps, "shape": [count, *shape], "rotation": rotation, "codec": codec,
                "decode_error": error}

    def _format_fields(self) -> dict:
        """Extra JSON fields that must match (another store format adds its name and settings)."""
        return {}

    def _data_matches(self, key: str, meta: dict) -> bool:
        """Whether the committed data file is complete and has the shape the JSON records."""
        return _npy_shape(self.root / f"{key}.npy") == tuple(meta.get("shape", ()))

    def _build(self, source: Path, key: str) -> dict:
        stat = _source_stat(source)  # taken before decoding: a change during the build means stale
        content = _content_digest(source)
        final_npy, final_json = self.root / f"{key}.npy", self.root / f"{key}.json"
        for stale in self.root.glob(f".{key}.*"):  # leftovers of crashed builds (we hold the lock)
            stale.unlink(missing_ok=True)
        final_json.unlink(missing_ok=True)  # un-commit the old version first
        tmp = f".{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        raw, tmp_npy, tmp_json = (self.root / f"{tmp}.{ext}" for ext in ("raw", "npy", "json"))
        try:
            count, shape, fps, rotation, codec, error = _decode_to_raw(source, raw, self.short_side)
            _raw_to_npy(raw, tmp_npy, (count, *shape))
            raw.unlink()  # free its space before the JSON is written
            meta = self._record(source, stat, content, count, shape, fps, rotation, codec, error)
            _commit(meta, tmp_npy, final_npy, tmp_json, final_json)
            return meta
        except OSError as exc:
            if is_disk_full(exc):
                final_npy.unlink(missing_ok=True)
                raise DiskFullError(self.root, f"the frame store ({source.name})") from exc
            raise
        finally:
            for path in (raw, tmp_npy, tmp_json):
                path.unlink(missing_ok=True)


def _decode_to_raw(source: Path, raw: Path, short_side: int) -> tuple[int, tuple[int, int, int], float, int, str, str]:
    """Stream resized RGB frames to a raw file (one decode pass, bounded memory)."""
    with open(raw, "wb") as out:
        return decode_each(source, short_side, lambda image: out.write(image.tobytes()))


def decode_each(
    source: Path, short_side: int, sink: Callable[[np.ndarray], object]
) -> tuple[int, tuple[int, int, int], float, int, str, str]:
    """Hand every resized RGB frame to `sink`; return (count, shape, fps, rotation, codec, error).

    Every frame gets the first frame's size (a resolution change mid-stream is resized away).
    """
    shape: tuple[int, int, int] | None = None
    rotation = 0
    with VideoReader(source) as reader:
        for frame in reader:
            image = to_rgb(frame, short_side=short_side)
            if shape is None:
                shape, rotation = image.shape, frame_rotation(frame)
            elif image.shape != shape:  # resolution changed mid-stream: keep the first frame's size
                image = cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
            sink(image)
        rate, codec, error, count = reader.rate, reader.codec, reader.error, reader.count
    if count == 0 or shape is None:
        raise VideoError(source, f"no decodable frames ({error or 'empty video stream'})")
    return count, shape, float(rate) if rate else 0.0, rotation, codec, error


def _raw_to_npy(raw: Path, npy: Path, shape: tuple[int, ...]) -> None:
    """Write a `.npy` header then the raw bytes with plain writes (ENOSPC raises; no SIGBUS), fsync."""
    with open(npy, "wb") as out, open(raw, "rb") as src:
        np.lib.format.write_array_header_1_0(out, {"descr": "|u1", "fortran_order": False, "shape": shape})
        while chunk := src.read(_COPY_CHUNK_BYTES):
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())


def _content_digest(source: Path) -> str:
    """sha1 of the size and the first and last MiB: catches a file rewritten with size and mtime kept."""
    digest = hashlib.sha1()
    try:
        with open(source, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            digest.update(str(size).encode() + b"\0" + f.read(_DIGEST_BYTES))
            if size > _DIGEST_BYTES:
                f.seek(max(_DIGEST_BYTES, size - _DIGEST_BYTES))
                digest.update(f.read(_DIGEST_BYTES))
    except FileNotFoundError:
        raise VideoError(source, "file not found") from None
    except OSError as exc:
        raise VideoError(source, f"cannot read ({exc.strerror})") from None
    return digest.hexdigest()



def build_each(try_ensure: Callable[[Any, Path], str | None], owner: Any, paths: Iterable[str | os.PathLike], *,
               desc: str, progress: bool, workers: int) -> BuildReport:
    """`try_ensure(owner, path)` for every video (None = built, else the reason it was skipped), in
    this process or in `workers` spawned ones, with a progress bar. Shared by every per-video cache
    (frame store, flow cache) so each has the same skip-and-report behaviour. `try_ensure` must be a
    module-level function (spawned workers import it) and raise, not return, a full disk."""
    from tqdm.auto import tqdm

    paths = [Path(p) for p in paths]
    reasons: dict[int, str | None] = {}
    with tqdm(total=len(paths), desc=desc, unit="video", disable=not progress) as bar:
        if workers <= 1:
            for i, path in enumerate(paths):
                reasons[i] = try_ensure(owner, path)
                bar.update(1)
        else:
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                     initializer=die_with_parent) as pool:
                futures = {pool.submit(try_ensure, owner, p): i for i, p in enumerate(paths)}
                try:
                    for future in as_completed(futures):
                        reasons[futures[future]] = future.result()
                        bar.update(1)
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    report = BuildReport()
    for i, path in enumerate(paths):
        (report.ok.append(path) if reasons[i] is None else report.skipped.append((path, reasons[i])))
    return report

def _try_ensure(store: FrameStore, path: Path) -> str | None:
    """None when stored, else the reason (top level so spawned workers can run it).

    A full disk is raised (`DiskFullError`), never returned as the video's fault.
    """
    try:
        store.ensure(path)
        return None
    except VideoError as exc:
        return exc.reason
    except DiskFullError:
        raise
    except Exception as exc:
        if is_disk_full(exc):  # e.g. the lock file could not be created
            raise DiskFullError(store.root, f"the frame store ({path.name})") from exc
        return f"{type(exc).__name__}: {exc}"


def _map_frames(npy: Path, shape: tuple[int, int, int, int]) -> np.ndarray:
    """The frames of a committed `.npy` as a read-only array over a memory map.

    The validated record already holds the shape, and the data of a C-order uint8 `.npy` is the
    file's last `prod(shape)` bytes, so the header is not parsed again: `np.load(mmap_mode="r")`
    spent ~0.3 ms on it per open, and a store larger than its open-map budget (UCF101's 13,320
    videos) re-opens on most reads. A plain ndarray indexes faster than `np.memmap`; it keeps the
    mapping (and its descriptor) alive until the last view of it goes.
    """
    with open(npy, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    count = math.prod(shape)
    if len(mapped) < count + 10:  # 10: the smallest .npy header
        raise ValueError(f"{npy}: {len(mapped)} bytes, too short for frames of shape {shape}")
    return np.frombuffer(mapped, dtype=np.uint8, count=count, offset=len(mapped) - count).reshape(shape)


def _stored(meta: dict) -> StoredVideo:
    count, height, width, _ = meta["shape"]
    return StoredVideo(num_frames=int(count), height=int(height), width=int(width), fps=float(meta["fps"]))


def _absolute(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(os.fspath(path)))


def _source_stat(source: Path) -> os.stat_result:
    try:
        return source.stat()
    except FileNotFoundError:
        raise VideoError(source, "file not found") from None


def _npy_shape(path: Path) -> tuple[int, ...] | None:
    """Shape in a `.npy` header, or None if the file is missing, not uint8 or shorter than it claims."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            offset = f.tell()
    except (OSError, ValueError):
        return None
    if dtype != np.uint8 or fortran or os.path.getsize(path) != offset + int(np.prod(shape)):
        return None
    return tuple(shape)


def _commit(meta: dict[str, Any], tmp_npy: Path, final_npy: Path, tmp_json: Path, final_json: Path) -> None:
    """Write the record beside a complete .npy and commit both: the JSON's rename is the commit marker.

    Shared by the frame store and the flow cache. Renames need no space, so once both temporary files
    are written and synced a full disk can no longer leave a half-committed entry."""
    tmp_json.write_text(json.dumps(meta, indent=1))
    _fsync(tmp_json)
    os.replace(tmp_npy, final_npy)
    os.replace(tmp_json, final_json)  # the commit


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
