"""Pick a frame-store format by name: `open_store(root, format="raw" | "jpeg", ...)`.

Raw uint8 (`FrameStore`) is the classroom default: exact frames, fastest reads, and the
synthetic set is small. JPEG (`JpegFrameStore`) is for UCF101/HMDB51/Kinetics, ~10x smaller.
"""

from __future__ import annotations

import os

from vsslkit.data.jpeg_store import DEFAULT_QUALITY, JpegFrameStore
from vsslkit.data.store import FrameStore

STORE_FORMATS = ("raw", "jpeg")


def open_store(root: str | os.PathLike, *, format: str = "raw", short_side: int = 128,
               quality: int = DEFAULT_QUALITY) -> FrameStore:
    """A frame store of `format` under `root` (`quality` is used by JPEG only)."""
    if format == "raw":
        return FrameStore(root, short_side=short_side)
    if format == "jpeg":
        return JpegFrameStore(root, short_side=short_side, quality=quality)
    raise ValueError(f"unknown store format {format!r}; use one of {', '.join(STORE_FORMATS)}")
