"""Probe and decode video files with PyAV, robustly.

Containers lie: AVI files report one frame more than they hold, a cinepak AVI claims 444 frames
and holds 68, Matroska/WebM may carry no frame count or duration, and B-frame or VFR files carry
timestamps that are out of order or irregular. So frames are always counted and indexed by
*decoding* them in the decoder's output (presentation) order, never by container counts or pts
arithmetic. `decode_clip` is the one exception: it seeks, for speed, and is meant for well-formed
constant-frame-rate files (it is the "straight from the file" baseline of `vsslkit bench data`).

Truncated streams: when decoding fails after at least one good frame, the good frames are the
video. `probe` reports their number (and the error in `VideoInfo.decode_error`), `decode`
returns them, and asking for a frame past them raises `VideoError`. A file with no decodable
frame raises `VideoError`.

Rotation is the clockwise angle (0/90/180/270) a player turns the coded picture by, read from
the display matrix of the first decoded frame (`VideoFrame.rotation`, counter-clockwise in
PyAV, hence the sign flip). Angles are rounded to the nearest multiple of 90; mirror flips in
the display matrix are ignored.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif", ".ogv", ".3gp"}
)
# Formats FFmpeg "detects" in files that are not videos at all (text rendered as ANSI art).
_NOT_VIDEO_FORMATS = {"tty"}


class VideoError(Exception):
    """An unreadable video: `str()` is `"<path>: <reason>"`; picklable across processes."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(str(path), reason)
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` learned by decoding a file; width/height are the display size (rotated).

    `num_frames` is the number of decodable frames; `duration` is num_frames / fps (container
    durations are unreliable); `decode_error` is empty unless decoding stopped early.
    `declared_frames` is the container's own count (0 when it has none); `short_warning` says
    when far fewer frames decode than it declares (a file cut short, or a container that lies).
    """

    path: str
    num_frames: int
    fps: float
    width: int
    height: int
    rotation: int
    duration: float
    codec: str
    decode_error: str = ""
    declared_frames: int = 0

    @property
    def short_warning(self) -> str:
        """"only N of M declared frames decoded ..." when frames are missing, else "" (AVIs declare one extra)."""
        if self.declared_frames > self.num_frames + 1:
            return (f"only {self.num_frames} of {self.declared_frames} declared frames decoded "
                    "(a truncated file, or a container that miscounts)")
        return ""


class VideoReader:
    """Iterate over the decoded frames of one file in presentation order.

    Yields `av.VideoFrame`s (use `to_rgb`) and stops quietly at a mid-stream decode error,
    recording it in `.error`; `.count` is the number of frames yielded so far. Open it with
    `with`, or call `close()`. Kept public so the frame store can stream frames to disk once.
    """

    def __init__(self, path: str | os.PathLike, *, threads: bool = True):
        self.path = str(path)
        self.container, self.stream = _open(self.path)
        if threads:
            self.stream.thread_type = "AUTO"
        self.count = 0
        self.error = ""

    @property
    def codec(self) -> str:
        return self.stream.codec_context.name

    @property
    def rate(self) -> Fraction | None:
        """The stream's average frame rate (or guessed/base rate), None when unknown."""
        for rate in (self.stream.average_rate, self.stream.guessed_rate, self.stream.base_rate):
            if rate:
                return Fraction(rate)
        return None

    def __iter__(self) -> Iterator[av.VideoFrame]:
        try:
            for frame in self.container.decode(self.stream):
                self.count += 1
                yield frame
        except (av.FFmpegError, ValueError, OSError) as exc:  # InvalidDataError is a ValueError
            self.error = f"decoding stopped after {self.count} frames: {_describe(exc)}"

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> VideoReader:  # noqa: PYI034 (typing.Self needs Python 3.11)
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def probe(path: str | os.PathLike) -> VideoInfo:
    """Count decodable frames and read fps, display size, rotation and codec of a video."""
    path = str(path)
    rotation = 0
    coded = (0, 0)
    pts: list[int] = []
    with VideoReader(path) as reader:
        for frame in reader:
            if reader.count == 1:
                rotation, coded = frame_rotation(frame), (frame.width, frame.height)
            if frame.pts is not None and len(pts) < 2:
                pts.append(frame.pts)
        if reader.count == 0:
            raise VideoError(path, f"no decodable frames ({reader.error or 'empty video stream'})")
        rate = reader.rate
        if rate is None:  # no declared rate: estimate from the first two timestamps
            if len(pts) < 2 or pts[1] <= pts[0] or not reader.stream.time_base:
                raise VideoError(path, "cannot determine the frame rate (no rate, no usable timestamps)")
            rate = 1 / ((pts[1] - pts[0]) * reader.stream.time_base)
        width, height = coded if rotation in (0, 180) else coded[::-1]
        return VideoInfo(
            path=path,
            num_frames=reader.count,
            fps=float(rate),
            width=width,
            height=height,
            rotation=rotation,
            duration=float(reader.count / rate),
            codec=reader.codec,
            decode_error=reader.error,
            declared_frames=int(reader.stream.frames or 0),
        )


def decode(
    path: str | os.PathLike, *, indices: Sequence[int] | np.ndarray | None = None, short_side: int | None = None
) -> np.ndarray:
    """Frames `indices` (all when None; any order, repeats allowed) as uint8 `(T, H, W, 3)` RGB.

    Decodes sequentially from the start and indexes frames by decode count, so VFR files and
    files with out-of-order timestamps come out right. Rotation is applied; `short_side`
    resizes so the shorter display side has that many pixels.
    """
    path = str(path)
    wanted = None if indices is None else _check_indices(path, indices)
    needed = set() if wanted is None else set(wanted.tolist())
    last = None if wanted is None else max(needed, default=0)  # empty list: frame 0 gives the shape
    got: dict[int, np.ndarray] = {}
    with VideoReader(path) as reader:
        for i, frame in enumerate(reader):
            if wanted is None or i in needed or i == last:
                got[i] = to_rgb(frame, short_side=short_side)
            if last is not None and i >= last:
                break
        available, error = reader.count, reader.error
    if available == 0:
        raise VideoError(path, f"no decodable frames ({error or 'empty video stream'})")
    if wanted is None:
        return np.stack([got[i] for i in range(available)])
    missing = sorted(needed - set(got))
    if missing:
        reason = f"frame {missing[0]} requested but only {available} frames decode"
        raise VideoError(path, reason + (f" ({error})" if error else ""))
    if len(wanted) == 0:
        return np.zeros((0, *next(iter(got.values())).shape), dtype=np.uint8)
    return np.stack([got[i] for i in wanted.tolist()])


def decode_clip(
    path: str | os.PathLike, indices: Sequence[int] | np.ndarray, *, short_side: int | None = None
) -> np.ndarray:
    """Frames `indices` via a seek to the keyframe before min(indices), decoding up to max(indices).

    The index of the first frame after the seek comes from its pts and the stream's average
    rate; later frames are counted. Exact for constant-frame-rate files (checked against
    `decode` in the tests); decodes from the start instead when the seek lands after the wanted
    frame or timestamps are missing. Use `decode` for awkward files.
    """
    path = str(path)
    wanted = _check_indices(path, indices)
    if len(wanted) == 0:
        raise ValueError(f"{path}: decode_clip needs at least one frame index")
    needed = set(wanted.tolist())
    lo, hi = min(needed), max(needed)
    got: dict[int, np.ndarray] = {}
    index: int | None = None
    reliable = True
    with VideoReader(path, threads=False) as reader:
        stream, rate = reader.stream, reader.rate
        start = stream.start_time or 0
        seeked = lo > 0 and rate is not None and bool(stream.time_base)
        if seeked:
            target = start + int(Fraction(lo) / (rate * stream.time_base))
            reader.container.seek(target, stream=stream, backward=True, any_frame=False)
        for frame in reader:
            if index is not None:
                index += 1
            elif not seeked:
                index = 0
            elif frame.pts is None:
                reliable = False
                break
            else:
                index = round((frame.pts - start) * stream.time_base * rate)
                if not 0 <= index <= lo:
                    reliable = False
                    break
            if index in needed:
                got[index] = to_rgb(frame, short_side=short_side)
            if index >= hi:
                break
        error = reader.error
    if not reliable:
        return decode(path, indices=wanted, short_side=short_side)
    if len(got) < len(needed):
        reason = f"frame {hi} requested but the video ends at frame {index}"
        raise VideoError(path, reason + (f" ({error})" if error else ""))
    return np.stack([got[i] for i in wanted.tolist()])


def to_rgb(frame: av.VideoFrame, *, short_side: int | None = None) -> np.ndarray:
    """One decoded frame as display-oriented uint8 `(H, W, 3)` RGB, optionally resized."""
    image = frame.to_ndarray(format="rgb24")
    rotation = frame_rotation(frame)
    if short_side is not None:
        h, w = image.shape[:2]
        size = resized_shape(h, w, short_side)  # rotation by 90/270 keeps the short side
        if (h, w) != size:
            interpolation = cv2.INTER_AREA if size[0] < h else cv2.INTER_LINEAR
            image = cv2.resize(image, (size[1], size[0]), interpolation=interpolation)
    if rotation:
        image = np.ascontiguousarray(np.rot90(image, k=-rotation // 90))
    return image


def resized_shape(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(h, w) after scaling so that min(h, w) == short_side, keeping the aspect ratio."""
    if short_side < 1:
        raise ValueError(f"short_side must be >= 1, got {short_side}")
    scale = short_side / min(height, width)
    if height <= width:
        return short_side, max(1, round(width * scale))
    return max(1, round(height * scale)), short_side


def frame_rotation(frame: av.VideoFrame) -> int:
    """Clockwise display rotation of a decoded frame in degrees: 0, 90, 180 or 270."""
    return round(-float(frame.rotation or 0) / 90.0) * 90 % 360


def is_video_file(path: str | os.PathLike) -> bool:
    """Cheap filter for folder scans: a known video extension (the content is checked by probe)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _open(path: str) -> tuple[av.container.InputContainer, av.VideoStream]:
    if not os.path.exists(path):
        raise VideoError(path, "file not found")
    if os.path.isdir(path):
        raise VideoError(path, "is a directory, not a video file")
    if os.path.getsize(path) == 0:
        raise VideoError(path, "empty file (0 bytes)")
    try:
        container = av.open(path, metadata_errors="ignore")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise VideoError(path, f"not a readable video container ({_describe(exc)})") from exc
    if container.format.name in _NOT_VIDEO_FORMATS:
        container.close()
        raise VideoError(path, f"not a video (FFmpeg reads it as '{container.format.name}', i.e. text)")
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        raise VideoError(path, f"no video stream (streams: {', '.join(kinds)})")
    return container, container.streams.video[0]


def _check_indices(path: str, indices: Sequence[int] | np.ndarray) -> np.ndarray:
    wanted = np.asarray(indices)
    if wanted.ndim != 1 or (len(wanted) and not np.issubdtype(wanted.dtype, np.integer)):
        raise ValueError(f"{path}: frame indices must be a 1-D sequence of integers, got {wanted.dtype} {wanted.shape}")
    wanted = wanted.astype(np.int64)
    if len(wanted) and wanted.min() < 0:
        raise ValueError(f"{path}: negative frame index {int(wanted.min())}")
    return wanted


def _describe(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return f"{type(exc).__name__}: {text}"
