"""Atomic text files: a reader (or a rerun after kill -9 or a full disk) sees the old file or the
new one, never a torn or empty one.

The text goes to a temp file in the same folder, is fsync'ed and renamed over the target; on any
failure the temp file is removed, and a full disk becomes a one-line `DiskFullError`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from vsslkit.errors import DiskFullError, is_disk_full


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Replace `path` with `text` (UTF-8) atomically; returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results and reports are for whoever reads the folder
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFullError(path, "it") from exc
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make renames inside `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
