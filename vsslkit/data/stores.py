"""Pick a frame-store format by name: `open_store(root, format="raw" | "jpeg", ...)`.

Raw uint8 (`FrameStore`) is the classroom default: exact frames, fastest reads, and the
synthetic set is small. JPEG (`JpegFrameStore`) is for UCF101/HMDB51/Kinetics, ~10x smaller.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vsslkit.data.jpeg_store import DEFAULT_QUALITY, JpegFrameStore
from vsslkit.data.store import FrameStore

STORE_FORMATS = ("raw", "jpeg")
MARKER = ".vsslkit-store.json"  # in a dataset folder: the store format `data prepare` built


def open_store(root: str | os.PathLike, *, format: str = "raw", short_side: int = 128,
               quality: int = DEFAULT_QUALITY) -> FrameStore:
    """A frame store of `format` under `root` (`quality` is used by JPEG only)."""
    if format == "raw":
        return FrameStore(root, short_side=short_side)
    if format == "jpeg":
        return JpegFrameStore(root, short_side=short_side, quality=quality)
    raise ValueError(f"unknown store format {format!r}; use one of {', '.join(STORE_FORMATS)}")


def record_format(dataset_root: str | os.PathLike, *, format: str, quality: int, short_side: int) -> None:
    """Note in the dataset folder which store `data prepare` built (atomic: temp file + rename)."""
    path = Path(dataset_root) / MARKER
    tmp = path.with_name(f"{MARKER}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"format": format, "quality": quality, "short_side": short_side}))
    os.replace(tmp, path)


def recorded_format(dataset_root: str | os.PathLike) -> dict:
    """What `record_format` wrote for this dataset, or {} (never prepared, or unreadable)."""
    try:
        recorded = json.loads((Path(dataset_root) / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) and recorded.get("format") in STORE_FORMATS else {}
