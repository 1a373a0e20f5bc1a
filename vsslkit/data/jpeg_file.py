"""One file of JPEG-encoded frames with an offset index: the on-disk unit of the JPEG frame store.

Why one file per video and not a folder of `.jpg`s: a clip then costs one `open` (cached per
process) and 16 slices of a memmap, instead of 16 file opens, and a dataset is 13 k files rather
than 2.5 M. Layout (all integers little-endian int64):

    [JPEG 0][JPEG 1]...[JPEG n-1][offsets: n + 1 int64][n: int64][MAGIC: 8 bytes]

`offsets[i]:offsets[i + 1]` is frame `i`'s JPEG. The trailer comes last, so a file cut short by
a crash or a full disk has no valid trailer and `JpegFile` refuses it. This module needs only
cv2/numpy (torch for the batched GPU decode), never PyAV, so GPU hosts without `av` can use it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

MAGIC = b"VSJPEG01"
_TRAILER = 8 + len(MAGIC)
# cv2 >= 4.11 decodes straight to RGB; older versions decode BGR and we swap channels.
_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)


def encode_frame(rgb: np.ndarray, quality: int) -> np.ndarray:
    """uint8 `(h, w, 3)` RGB → JPEG bytes (a standard JPEG: any viewer shows the right colours)."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for a frame of shape {rgb.shape}")
    return buf.reshape(-1)


def decode_frame(data: np.ndarray) -> np.ndarray:
    """JPEG bytes (uint8 array) → uint8 `(h, w, 3)` RGB, on the CPU."""
    if _IMREAD_RGB is not None:
        image = cv2.imdecode(data, _IMREAD_RGB)
    else:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if image is not None:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image is None:
        raise ValueError("corrupt JPEG frame")
    return image


def jpeg_roundtrip(frames: np.ndarray, quality: int) -> np.ndarray:
    """What the JPEG store returns for these RGB frames (encode + decode each)."""
    return np.stack([decode_frame(encode_frame(f, quality)) for f in frames]) if len(frames) else frames.copy()


class JpegWriter:
    """Append encoded frames to an open binary file, then `finish()` writes the index and trailer.

    The caller owns the file (temporary name, fsync, rename): this class only knows the layout.
    """

    def __init__(self, f: BinaryIO, quality: int):
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
        self.f, self.quality = f, int(quality)
        self.offsets = [0]

    def add(self, rgb: np.ndarray) -> None:
        data = encode_frame(rgb, self.quality)
        self.f.write(data.data)
        self.offsets.append(self.offsets[-1] + len(data))

    def finish(self) -> int:
        """Write the index and trailer; return the file's total size in bytes."""
        n = len(self.offsets) - 1
        self.f.write(np.asarray(self.offsets, dtype="<i8").tobytes())
        self.f.write(np.asarray([n], dtype="<i8").tobytes() + MAGIC)
        return self.offsets[-1] + 8 * (n + 1) + _TRAILER


def write_jpeg_file(path: str | os.PathLike, frames: Iterable[np.ndarray], quality: int = 90) -> int:
    """Write RGB frames to `path` in this layout (no atomicity: for benchmarks and tests)."""
    with open(path, "wb") as f:
        writer = JpegWriter(f, quality)
        for frame in frames:
            writer.add(frame)
        return writer.finish()


class JpegFile:
    """Random access to the frames of one JPEG file (memmapped; opened once per process)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        # a plain ndarray view slices ~10% faster than the memmap object; it keeps the mapping alive
        self.buffer = np.memmap(self.path, dtype=np.uint8, mode="r").view(np.ndarray)
        n = trailer_count(self.path)
        if n is None:
            raise ValueError(f"{self.path}: not a complete JPEG frame file (bad trailer)")
        end = len(self.buffer) - _TRAILER
        offsets = np.frombuffer(self.buffer[end - 8 * (n + 1) : end], dtype="<i8").astype(np.int64)
        if offsets[0] != 0 or offsets[-1] != end - 8 * (n + 1) or np.any(np.diff(offsets) <= 0):
            raise ValueError(f"{self.path}: corrupt frame index")
        self.offsets: list[int] = offsets.tolist()  # Python ints: the hot loop slices with them

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def encoded(self, i: int) -> np.ndarray:
        """Frame `i`'s JPEG bytes (a read-only view into the mapped file)."""
        return self.buffer[self.offsets[i] : self.offsets[i + 1]]

    def read(self, indices: Sequence[int] | np.ndarray, shape: tuple[int, int, int] | None = None) -> np.ndarray:
        """Decode frames `indices` (any order; a repeated index is decoded once) into `(n, h, w, 3)`."""
        order = np.asarray(indices, dtype=np.int64).tolist()
        out: np.ndarray | None = None if shape is None else np.empty((len(order), *shape), dtype=np.uint8)
        first: dict[int, int] = {}
        for k, i in enumerate(order):
            if i in first:
                out[k] = out[first[i]]
                continue
            image = decode_frame(self.buffer[self.offsets[i] : self.offsets[i + 1]])
            if out is None:
                out = np.empty((len(order), *image.shape), dtype=np.uint8)
            elif image.shape != out.shape[1:]:
                raise ValueError(f"{self.path}: frame {i} decodes to {image.shape}, stored shape {out.shape[1:]}")
            out[k] = image
            first[i] = k
        return out if out is not None else np.empty((0, 0, 0, 3), dtype=np.uint8)


def trailer_count(path: str | os.PathLike) -> int | None:
    """Frame count from a file's trailer, or None when the file is missing, short or not this format."""
    try:
        size = os.path.getsize(path)
        if size < _TRAILER + 8:
            return None
        with open(path, "rb") as f:
            f.seek(size - _TRAILER)
            tail = f.read(_TRAILER)
    except OSError:
        return None
    if tail[8:] != MAGIC:
        return None
    n = int(np.frombuffer(tail[:8], dtype="<i8")[0])
    return n if 0 < n and 8 * (n + 1) + _TRAILER <= size else None


def decode_batch_cuda(encoded: Sequence[np.ndarray], device: str = "cuda"):
    """Decode many JPEGs at once on the GPU (nvJPEG via torchvision) → uint8 `(n, 3, h, w)` tensor.

    All frames must have the same size (one video, or one store short side with equal aspect).
    """
    import torch
    from torchvision.io import decode_jpeg

    tensors = [torch.from_numpy(np.array(e)) for e in encoded]  # copies: memmap views are read-only
    return torch.stack(decode_jpeg(tensors, device=device))


class JpegFileSource:
    """A frame source over `.jpgs` files given by path (no store, no PyAV): `read` and `num_frames`.

    For benchmarks on hosts without video files or `av`; files are opened once per process and
    the cache is not pickled, so it can go to DataLoader workers.
    """

    def __init__(self) -> None:
        self._files: dict[str, JpegFile] = {}

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self._files = {}

    def _file(self, path: str | os.PathLike) -> JpegFile:
        key = os.fspath(path)
        if key not in self._files:
            self._files[key] = JpegFile(path)
        return self._files[key]

    def num_frames(self, path: str | os.PathLike) -> int:
        return len(self._file(path))

    def read(self, path: str | os.PathLike, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        return self._file(path).read(indices)
