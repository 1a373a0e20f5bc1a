"""Optical flow computed once per video, beside the frame store (seed 003's labels need it).

Flow is computed from the *stored* frames (so it is pixel-aligned with what the loader reads),
one field per consecutive frame pair: `flow[i]` maps frame i to frame i+1, channels (u, v) with u
horizontal (+x right) and v vertical (+y down, image rows).

Storage: int8 with a step of 1/8 px (`FLOW_STEP`), clipped to ±15.875 px. Why int8 and not
float16: half the bytes (2 per pixel pair instead of 4; the 420-video synthetic training set at
64 px is ~0.4 GB instead of ~0.85 GB) and the quantisation error (≤ 1/16 px) is 5-8x below the
estimator's own error (Farneback's end-point error is 0.3-0.5 px on textured objects, SPECS §2.4).
Motions in the stored videos (short side 64-128) stay far inside ±16 px per frame; the JSON
record counts the clipped values so a clip that saturates is visible.

Layout under `root` (default: `<frame store>/flow-<method>`), per video:
  `<key>.npy`   int8 `(T-1, h, w, 2)`
  `<key>.json`  the method and its settings, the quantisation step, the frame store's record it was
                computed from (source size, mtime, content digest, shape) and a format version
  `<key>.lock`  flock'ed while building (concurrent builders build once)
The same guarantees as `FrameStore`: written under temporary names with plain writes (never a
memmap: ENOSPC raises `DiskFullError` naming the cache, no SIGBUS), fsync'ed, renamed; the JSON is
renamed last and is the commit marker, so a kill -9 mid-build is never taken for a valid cache.
A change of the source video (which rebuilds its frames) or of the method rebuilds the flow.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vsslkit.data.open_maps import OpenMaps
from vsslkit.data.store import BuildReport, _absolute, _commit, _locked, build_each
from vsslkit.data.video import VideoError
from vsslkit.errors import DiskFullError, is_disk_full

FORMAT_VERSION = 1
FLOW_STEP = 0.125  # px per int8 unit
FLOW_LIMIT = 127 * FLOW_STEP
METHODS = ("farneback", "dis", "tvl1")
FARNEBACK = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2,
             "flags": 0}  # SPECS §2.4: deterministic, dense, smooth; ~1 ms per 64x64 pair
DIS_PRESET = 1  # DIS "fast": the quick alternative


def tvl1_available() -> bool:
    """TV-L1 needs OpenCV's contrib build (`cv2.optflow`), never a dependency of vsslkit."""
    return hasattr(cv2, "optflow") and hasattr(cv2.optflow, "DualTVL1OpticalFlow_create")


class FlowEstimator:
    """One method's flow between two uint8 RGB frames; float32 `(h, w, 2)` in pixels."""

    def __init__(self, method: str = "farneback"):
        if method not in METHODS:
            raise ValueError(f"unknown flow method {method!r}; choose one of {', '.join(METHODS)}")
        if method == "tvl1" and not tvl1_available():
            raise ValueError("flow method 'tvl1' needs cv2.optflow (opencv-contrib-python-headless), "
                             "which is not installed; use 'farneback' or 'dis'")
        self.method = method
        self._dis = cv2.DISOpticalFlow_create(DIS_PRESET) if method == "dis" else None
        self._tvl1 = cv2.optflow.DualTVL1OpticalFlow_create() if method == "tvl1" else None

    @property
    def settings(self) -> dict[str, Any]:
        return {"farneback": FARNEBACK, "dis": {"preset": DIS_PRESET}, "tvl1": {}}[self.method]

    def gray(self, frames: np.ndarray) -> np.ndarray:
        """uint8 `(T, h, w, 3)` RGB → uint8 `(T, h, w)` luma."""
        return np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames])

    def pair(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """Flow from gray frame `prev` to gray frame `nxt`."""
        if self.method == "farneback":
            return cv2.calcOpticalFlowFarneback(prev, nxt, None, *FARNEBACK.values())
        if self.method == "dis":
            return self._dis.calc(prev, nxt, None)
        return self._tvl1.calc(prev, nxt, None)

    def video(self, frames: np.ndarray) -> np.ndarray:
        """float32 `(T-1, h, w, 2)` flows of consecutive frames."""
        gray = self.gray(frames)
        return np.stack([self.pair(gray[i], gray[i + 1]) for i in range(len(gray) - 1)])


def quantise(flow: np.ndarray) -> tuple[np.ndarray, int]:
    """float flow → int8 at `FLOW_STEP` px (clipped), and how many values were clipped."""
    scaled = np.rint(np.asarray(flow, dtype=np.float32) / FLOW_STEP)
    clipped = int(np.count_nonzero(np.abs(scaled) > 127))
    return np.clip(scaled, -127, 127).astype(np.int8), clipped


def dequantise(q: np.ndarray) -> np.ndarray:
    return q.astype(np.float32) * FLOW_STEP


class FlowCache:
    """Flow of every consecutive frame pair of each video, computed once from a frame store.

    `frames` is a `FrameStore` (raw or JPEG); `read(video, indices)` returns the flows between the
    frames `indices` (which must step by +1: flow between non-adjacent frames is not cached).
    Picklable for DataLoader workers (the memmap cache is per process), like the frame store.
    """

    def __init__(self, frames: Any, *, method: str = "farneback", root: str | os.PathLike | None = None):
        self.frames, self.method = frames, method
        self.estimator = FlowEstimator(method)
        self.root = Path(root) if root is not None else Path(frames.root) / f"flow-{method}"
        self.root.mkdir(parents=True, exist_ok=True)
        self._cache = OpenMaps()  # the recently read flows' memmaps (each holds a descriptor: data.open_maps)
        self._ensured: set[str] = set()  # paths (as given) validated by `ensure` in this process

    def __getstate__(self) -> dict:
        return {"frames": self.frames, "method": self.method, "root": self.root}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["frames"], method=state["method"], root=state["root"])

    def __repr__(self) -> str:
        return f"FlowCache({str(self.root)!r}, method={self.method!r}, frames={self.frames!r})"

    def key(self, video_path: str | os.PathLike) -> str:
        return self.frames.key(video_path)

    def ensure(self, video_path: str | os.PathLike) -> dict:
        """Build the video's flow if missing or stale; returns its JSON record."""
        source = _absolute(video_path)
        self.frames.ensure(source)  # rebuilds the frames first when the source changed
        key = self.key(source)
        meta = self._valid_meta(key)
        if meta is None:
            self._cache.clear()
            with _locked(self.root / f"{key}.lock"):
                meta = self._valid_meta(key)  # another process may have built it meanwhile
                if meta is None:
                    meta = self._build(source, key)
        self._ensured.add(os.fspath(video_path))
        return meta

    def read(self, video_path: str | os.PathLike, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """float32 `(len(indices)-1, h, w, 2)`: flow from frame indices[i] to indices[i+1]."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1 or len(idx) < 2 or np.any(np.diff(idx) != 1):
            raise ValueError(f"{video_path}: flow is cached between consecutive frames only; "
                             f"indices must step by +1, got {idx.tolist()}")
        flow = self._memmap(video_path)
        if idx[0] < 0 or idx[-1] - 1 >= len(flow):
            raise IndexError(f"{video_path}: frames {idx[0]}..{idx[-1]} outside the {len(flow) + 1} stored frames")
        return dequantise(flow[idx[0] : idx[-1]])

    def build(self, paths: Iterable[str | os.PathLike], *, progress: bool = True, workers: int = 1) -> BuildReport:
        """Flow for every video; a bad one is skipped with its reason, a full disk stops the build."""
        return build_each(_try_ensure, self, paths, desc=f"flow ({self.method})", progress=progress, workers=workers)

    # ------------------------------------------------------------------ internals

    def _memmap(self, video_path: str | os.PathLike) -> np.ndarray:
        name = os.fspath(video_path)
        flow = self._cache.get(name)
        if flow is None:
            if name not in self._ensured:  # validated once per process; an evicted map is only mapped again
                self.ensure(video_path)
            flow = np.load(self.root / f"{self.key(video_path)}.npy", mmap_mode="r").view(np.ndarray)
            self._cache.put(name, flow)
        return flow

    def _frames_record(self, key: str) -> dict:
        """The frame store's committed record: what the flow was computed from."""
        meta = json.loads((Path(self.frames.root) / f"{key}.json").read_text())
        return {k: meta.get(k) for k in ("source", "size", "mtime_ns", "content", "short_side", "shape", "format")}

    def _expected(self, key: str) -> dict:
        return {"format": FORMAT_VERSION, "method": self.method, "settings": self.estimator.settings,
                "step": FLOW_STEP, "frames": self._frames_record(key)}

    def _valid_meta(self, key: str) -> dict | None:
        try:
            meta = json.loads((self.root / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None
        if any(meta.get(k) != v for k, v in self._expected(key).items()):
            return None
        count, h, w, _ = meta["frames"]["shape"]
        if _npy_int8_shape(self.root / f"{key}.npy") != (count - 1, h, w, 2):
            return None
        return meta

    def _build(self, source: Path, key: str) -> dict:
        final_npy, final_json = self.root / f"{key}.npy", self.root / f"{key}.json"
        for stale in self.root.glob(f".{key}.*"):  # leftovers of crashed builds (we hold the lock)
            stale.unlink(missing_ok=True)
        final_json.unlink(missing_ok=True)  # un-commit the old version first
        tmp = f".{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        tmp_npy, tmp_json = self.root / f"{tmp}.npy", self.root / f"{tmp}.json"
        expected = self._expected(key)
        count, h, w, _ = expected["frames"]["shape"]
        if count < 2:
            raise VideoError(source, f"{count} stored frame: optical flow needs at least 2")
        try:
            clipped = 0
            with open(tmp_npy, "wb") as out:
                np.lib.format.write_array_header_1_0(out, {"descr": "|i1", "fortran_order": False,
                                                           "shape": (count - 1, h, w, 2)})
                prev = self.estimator.gray(self.frames.read(source, [0]))[0]
                for start in range(1, count, 32):  # bounded memory: 32 frames at a time
                    gray = self.estimator.gray(self.frames.read(source, np.arange(start, min(count, start + 32))))
                    for frame in gray:
                        q, n = quantise(self.estimator.pair(prev, frame))
                        clipped += n
                        out.write(q.tobytes())
                        prev = frame
                out.flush()
                os.fsync(out.fileno())
            meta = {**expected, "clipped_values": clipped, "shape": [count - 1, h, w, 2]}
            _commit(meta, tmp_npy, final_npy, tmp_json, final_json)
            return meta
        except OSError as exc:
            if is_disk_full(exc):
                final_npy.unlink(missing_ok=True)
                raise DiskFullError(self.root, f"the flow cache ({source.name})") from exc
            raise
        finally:
            for path in (tmp_npy, tmp_json):
                path.unlink(missing_ok=True)


def _try_ensure(cache: FlowCache, path: Path) -> str | None:
    """None when cached, else the reason (top level so spawned workers can run it)."""
    try:
        cache.ensure(path)
        return None
    except VideoError as exc:
        return exc.reason
    except DiskFullError:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise DiskFullError(cache.root, f"the flow cache ({path.name})") from exc
        return f"{type(exc).__name__}: {exc}"


def _npy_int8_shape(path: Path) -> tuple[int, ...] | None:
    """Shape in an int8 `.npy` header, or None when missing, of another dtype or truncated."""
    try:
        with open(path, "rb") as f:
            np.lib.format.read_magic(f)
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            offset = f.tell()
    except (OSError, ValueError):
        return None
    if dtype != np.int8 or fortran or os.path.getsize(path) != offset + int(np.prod(shape)):
        return None
    return tuple(shape)
