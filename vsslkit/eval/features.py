"""Frozen video-level features from a backbone layer (seed 000 §3.5.1 retrieval protocol).

Each video gives `clips_per_video` (10) uniformly spaced constant-stride clips (`uniform_plans`),
centre-cropped, no other augmentation. A chosen layer's map (pool3 / pool4 / pool5) is pooled
over time and space (global average, or the global 3D max), or — seed 002's retrieval feature
(§4.3, VCOP's `return_conv`) — max pooled by a (1, 2, 2) window and flattened ("max122"), and
the clip features are averaged into one vector per video. Clips from several videos share a batch and nothing is
ever dropped: the last batch is simply smaller. A video shorter than one clip is an error that
names the file (the caller filters short videos beforehand and reports them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import nn

from vsslkit.data.transforms import center_crop, residual_frames, to_float_clips
from vsslkit.data.video import VideoError
from vsslkit.eval.pooling import POOLING_HELP, POOLINGS
from vsslkit.models.weights import LoadReport, load_backbone_weights  # re-exported: one loader for the kit
from vsslkit.plans import VideoTooShortError, uniform_plans

Pooling = Literal["avg", "max", "max122"]


__all__ = ["POOLINGS", "POOLING_HELP", "FrameSource", "LoadReport", "extract_layer_features", "extract_video_features",
           "fitting_strides",
           "iter_clip_batches", "load_backbone_weights", "pool_features"]


class FrameSource(Protocol):
    """What feature extraction needs from a frame store (`vsslkit.data.store.FrameStore`)."""

    def read(self, video_path: Any, indices: np.ndarray) -> np.ndarray: ...


def iter_clip_batches(
    paths: Sequence[str | os.PathLike],
    frame_source: FrameSource,
    num_frames: Sequence[int],
    *,
    clip_len: int,
    stride: int | Sequence[int],
    clips_per_video: int,
    crop_size: int,
    residual: bool,
    batch_size: int,
    device: str | torch.device = "cpu",
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Yield `(video_index per clip, float clips (B, 3, T, crop, crop))` over all test clips.

    With `residual=True` each clip reads clip_len + 1 frames and yields their clip_len
    differences, as the residual-input backbones were trained. `stride` may be one value per
    video (see `fitting_strides`: short test videos keep their place with a smaller stride).
    """
    if len(num_frames) != len(paths):
        raise ValueError(f"{len(paths)} paths but {len(num_frames)} frame counts")
    strides = [int(stride)] * len(paths) if isinstance(stride, (int, np.integer)) else [int(s) for s in stride]
    if len(strides) != len(paths):
        raise ValueError(f"{len(paths)} paths but {len(strides)} strides")
    if batch_size < 1 or clips_per_video < 1:
        raise ValueError(f"batch_size and clips_per_video must be >= 1, got {batch_size}, {clips_per_video}")
    read_len = clip_len + (1 if residual else 0)
    owners: list[int] = []
    clips: list[torch.Tensor] = []

    def flush() -> tuple[np.ndarray, torch.Tensor]:
        x = to_float_clips(torch.stack(clips).to(device))
        if residual:
            x = residual_frames(x)
        out = (np.asarray(owners, dtype=np.int64), x)
        owners.clear()
        clips.clear()
        return out

    for vi, (path, n, video_stride) in enumerate(zip(paths, num_frames, strides)):
        try:
            plans = uniform_plans(int(n), read_len, video_stride, clips_per_video)
        except VideoTooShortError as exc:
            raise VideoError(path, f"too short for the test clips ({exc})") from exc
        for plan in plans:
            frames = np.asarray(frame_source.read(path, plan.indices))
            if frames.ndim != 4 or frames.shape[0] != len(plan) or frames.shape[-1] != 3:
                raise VideoError(path, f"frame source returned shape {frames.shape} for {len(plan)} frames")
            clips.append(center_crop(torch.from_numpy(frames)[None], crop_size)[0])
            owners.append(vi)
            if len(clips) == batch_size:
                yield flush()
    if clips:
        yield flush()


def fitting_strides(num_frames: Sequence[int], *, clip_len: int, stride: int, residual: bool) -> list[int | None]:
    """Per video, the largest stride <= `stride` at which one test clip fits (None: not even stride 1).

    The test protocol never drops a video silently: a video too short for the nominal stride is
    scored with the largest stride that fits (callers report it by name), and only a video
    shorter than one stride-1 clip has no clip at all.
    """
    if stride < 1 or clip_len < 1:
        raise ValueError(f"clip_len and stride must be >= 1, got {clip_len}, {stride}")
    read_len = clip_len + int(residual)
    out: list[int | None] = []
    for n in num_frames:
        fits = [s for s in range(stride, 0, -1) if (read_len - 1) * s + 1 <= int(n)]
        out.append(fits[0] if fits else None)
    return out


def pool_features(fmap: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """(B, C, T, H, W) → (B, C) by global average or global 3D max pooling, or → (B, C·T·⌊H/2⌋·⌊W/2⌋)
    by "max122": `MaxPool3d(kernel=(1, 2, 2), stride=(1, 2, 2))` then flatten (seed 002 §4.3;
    channel-major, as `torch.flatten` of VCOP's conv output)."""
    if fmap.dim() != 5:
        raise ValueError(f"expected a (B, C, T, H, W) feature map, got shape {tuple(fmap.shape)}")
    if pooling == "avg":
        return fmap.mean(dim=(2, 3, 4))
    if pooling == "max":
        return fmap.amax(dim=(2, 3, 4))
    if pooling == "max122":
        if fmap.shape[3] < 2 or fmap.shape[4] < 2:
            raise ValueError(f"max122 pooling needs a map of at least 2x2 pixels, got {tuple(fmap.shape[3:])}; "
                             "use a larger crop or an earlier layer")
        return torch.nn.functional.max_pool3d(fmap, kernel_size=(1, 2, 2), stride=(1, 2, 2)).flatten(1)
    raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")


def extract_layer_features(
    backbone: nn.Module,
    paths: Sequence[str | os.PathLike],
    frame_source: FrameSource,
    *,
    num_frames: Sequence[int],
    layers: Sequence[str] = ("pool5",),
    clip_len: int = 16,
    stride: int | Sequence[int] = 1,
    clips_per_video: int = 10,
    pooling: Pooling = "avg",
    crop_size: int = 112,
    residual: bool = False,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Like `extract_video_features` for several layers in one pass → `{layer: (N, C_layer)}`.

    `progress` shows a tqdm bar over the clip batches (a notebook cell otherwise sits silent for
    tens of seconds on a CPU).
    """
    if not paths:
        raise ValueError("no videos to extract features from")
    layers = tuple(layers)
    sums: dict[str, np.ndarray] = {}
    counts = np.zeros(len(paths), dtype=np.int64)
    was_training = backbone.training
    backbone.eval().to(device)
    try:
        with torch.inference_mode():
            batches = iter_clip_batches(
                paths, frame_source, num_frames, clip_len=clip_len, stride=stride,
                clips_per_video=clips_per_video, crop_size=crop_size, residual=residual,
                batch_size=batch_size, device=device,
            )
            if progress:
                from tqdm.auto import tqdm

                batches = tqdm(batches, total=-(-len(paths) * clips_per_video // batch_size), unit="batch",
                               desc=f"features of {len(paths)} videos")
            for owners, x in batches:
                maps = backbone.features(x, layers=layers)
                for layer in layers:
                    feats = pool_features(maps[layer], pooling).double().cpu().numpy()
                    if layer not in sums:
                        sums[layer] = np.zeros((len(paths), feats.shape[1]))
                    np.add.at(sums[layer], owners, feats)
                np.add.at(counts, owners, 1)
    finally:
        backbone.train(was_training)
    return {layer: (s / counts[:, None]).astype(np.float32) for layer, s in sums.items()}


def extract_video_features(
    backbone: nn.Module,
    paths: Sequence[str | os.PathLike],
    frame_source: FrameSource,
    *,
    num_frames: Sequence[int],
    clip_len: int = 16,
    stride: int | Sequence[int] = 1,
    clips_per_video: int = 10,
    layer: str = "pool5",
    pooling: Pooling = "avg",
    crop_size: int = 112,
    residual: bool = False,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """One feature vector per video, (N, C): layer map pooled per clip, averaged over the clips."""
    return extract_layer_features(
        backbone, paths, frame_source, num_frames=num_frames, layers=(layer,), clip_len=clip_len,
        stride=stride, clips_per_video=clips_per_video, pooling=pooling, crop_size=crop_size,
        residual=residual, batch_size=batch_size, device=device, progress=progress,
    )[layer]
