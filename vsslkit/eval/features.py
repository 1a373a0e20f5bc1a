"""Frozen video-level features from a backbone layer (seed 000 §3.5.1 retrieval protocol).

Each video gives `clips_per_video` (10) uniformly spaced constant-stride clips (`uniform_plans`),
centre-cropped, no other augmentation. A chosen layer's map (pool3 / pool4 / pool5) is pooled
over time and space (global average, or the global 3D max of seed 002) and the clip features
are averaged into one vector per video. Clips from several videos share a batch and nothing is
ever dropped: the last batch is simply smaller. A video shorter than one clip is an error that
names the file (the caller filters short videos beforehand and reports them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import nn

from vsslkit.data.transforms import center_crop, residual_frames, to_float_clips
from vsslkit.data.video import VideoError
from vsslkit.plans import VideoTooShortError, uniform_plans

Pooling = Literal["avg", "max"]
_PREFIXES = ("module.", "_orig_mod.")


class FrameSource(Protocol):
    """What feature extraction needs from a frame store (`vsslkit.data.store.FrameStore`)."""

    def read(self, video_path: Any, indices: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class LoadReport:
    """Which checkpoint tensors went where: printed by the CLI so a silent mismatch is visible."""

    loaded: int
    missing: list[str]  # backbone parameters the checkpoint did not provide
    unexpected: list[str]  # checkpoint tensors that are not backbone parameters (heads, MoCo keys…)
    source_key: str  # where the state dict was found, e.g. "model"


def load_backbone_weights(backbone: nn.Module, ckpt_path: str | os.PathLike) -> LoadReport:
    """Load a backbone's weights from a vsslkit (or foreign) checkpoint, robustly.

    Accepts a bare state dict or one under "model" / "state_dict" / "backbone"; strips
    "module." / "_orig_mod." wrapper prefixes, then keeps the "backbone." entries when there
    are any (a `PretextModel` or fine-tuned classifier) and reports everything else as
    unexpected. Shape mismatches and a checkpoint that provides no backbone tensor at all
    raise `ValueError` naming the file.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a loadable checkpoint ({type(exc).__name__}: {exc})") from exc
    state, source = _find_state_dict(raw, path)
    cleaned: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for prefix in _PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix) :]
        cleaned[key] = value
    if any(k.startswith("backbone.") for k in cleaned):
        picked = {k[len("backbone.") :]: v for k, v in cleaned.items() if k.startswith("backbone.")}
        others = [k for k in cleaned if not k.startswith("backbone.")]
    else:
        picked, others = cleaned, []
    own = backbone.state_dict()
    usable = {k: v for k, v in picked.items() if k in own}
    for key, value in usable.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise ValueError(f"{path}: {key} has shape {tuple(value.shape)}, backbone expects {tuple(own[key].shape)}")
    if not usable:
        raise ValueError(f"{path}: no tensor matches the backbone (first keys: {sorted(cleaned)[:5]})")
    backbone.load_state_dict(usable, strict=False)
    unexpected = sorted(others + [k for k in picked if k not in own])
    return LoadReport(len(usable), sorted(k for k in own if k not in usable), unexpected, source)


def _find_state_dict(raw: Any, path: Path) -> tuple[dict[str, torch.Tensor], str]:
    if isinstance(raw, dict):
        for key in ("model", "state_dict", "backbone"):
            if isinstance(raw.get(key), dict):
                return raw[key], key
        if raw and all(isinstance(v, torch.Tensor) for v in raw.values()):
            return raw, "<root>"
    raise ValueError(f"{path}: no state dict found (looked for 'model', 'state_dict', 'backbone' or a bare dict)")


def iter_clip_batches(
    paths: Sequence[str | os.PathLike],
    frame_source: FrameSource,
    num_frames: Sequence[int],
    *,
    clip_len: int,
    stride: int,
    clips_per_video: int,
    crop_size: int,
    residual: bool,
    batch_size: int,
    device: str | torch.device = "cpu",
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Yield `(video_index per clip, float clips (B, 3, T, crop, crop))` over all test clips.

    With `residual=True` each clip reads clip_len + 1 frames and yields their clip_len
    differences, as the residual-input backbones were trained.
    """
    if len(num_frames) != len(paths):
        raise ValueError(f"{len(paths)} paths but {len(num_frames)} frame counts")
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

    for vi, (path, n) in enumerate(zip(paths, num_frames)):
        try:
            plans = uniform_plans(int(n), read_len, stride, clips_per_video)
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


def pool_features(fmap: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """(B, C, T, H, W) → (B, C) by global average or global 3D max pooling."""
    if fmap.dim() != 5:
        raise ValueError(f"expected a (B, C, T, H, W) feature map, got shape {tuple(fmap.shape)}")
    if pooling == "avg":
        return fmap.mean(dim=(2, 3, 4))
    if pooling == "max":
        return fmap.amax(dim=(2, 3, 4))
    raise ValueError(f"pooling must be 'avg' or 'max', got {pooling!r}")


def extract_layer_features(
    backbone: nn.Module,
    paths: Sequence[str | os.PathLike],
    frame_source: FrameSource,
    *,
    num_frames: Sequence[int],
    layers: Sequence[str] = ("pool5",),
    clip_len: int = 16,
    stride: int = 1,
    clips_per_video: int = 10,
    pooling: Pooling = "avg",
    crop_size: int = 112,
    residual: bool = False,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
) -> dict[str, np.ndarray]:
    """Like `extract_video_features` for several layers in one pass → `{layer: (N, C_layer)}`."""
    if not paths:
        raise ValueError("no videos to extract features from")
    layers = tuple(layers)
    sums: dict[str, np.ndarray] = {}
    counts = np.zeros(len(paths), dtype=np.int64)
    was_training = backbone.training
    backbone.eval().to(device)
    try:
        with torch.inference_mode():
            for owners, x in iter_clip_batches(
                paths, frame_source, num_frames, clip_len=clip_len, stride=stride,
                clips_per_video=clips_per_video, crop_size=crop_size, residual=residual,
                batch_size=batch_size, device=device,
            ):
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
    stride: int = 1,
    clips_per_video: int = 10,
    layer: str = "pool5",
    pooling: Pooling = "avg",
    crop_size: int = 112,
    residual: bool = False,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """One feature vector per video, (N, C): layer map pooled per clip, averaged over the clips."""
    return extract_layer_features(
        backbone, paths, frame_source, num_frames=num_frames, layers=(layer,), clip_len=clip_len,
        stride=stride, clips_per_video=clips_per_video, pooling=pooling, crop_size=crop_size,
        residual=residual, batch_size=batch_size, device=device,
    )[layer]
