"""Write uint8 frames to a real video file with PyAV.

The synthetic dataset and the tests' fixtures go through the same encoder a user's data went
through (H.264 in mp4 by default), so the reading path that is tested is the real one.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    *,
    fps: int = 25,
    codec: str = "libx264",
    crf: int = 18,
    gop: int = 25,
    rotation: int | None = None,
) -> Path:
    """Encode `frames` (T, H, W, 3) uint8 RGB to `path`; H and W are rounded down to even.

    `gop` is the keyframe interval: short GOPs make random seeks cheap when clips are decoded
    straight from the file. `rotation` (degrees clockwise, as `probe` reports it) writes display-matrix metadata.
    The file is written under a temporary name and renamed, so it is never half-written.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: expected uint8 frames of shape (T, H, W, 3), got {frames.dtype} {frames.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        with av.open(str(tmp), mode="w", format=None if path.suffix else "mp4") as container:
            stream = container.add_stream(codec, rate=fps)
            stream.width, stream.height = w, h
            stream.pix_fmt = "yuv420p"
            if codec == "libx264":
                # one encoder thread: x264 output then depends only on the frames (same seed, same bytes)
                stream.options = {"crf": str(crf), "g": str(gop), "preset": "veryfast", "bf": "0", "threads": "1"}
            if rotation:  # display matrix; PyAV counts counter-clockwise, `rotation` is clockwise
                stream.set_display_rotation(-int(rotation))
            for frame in frames:
                video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:h, :w]), format="rgb24")
                for packet in stream.encode(video_frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
