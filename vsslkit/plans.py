"""Frame-index plans: which frames of a video make a clip.

A plan is a small printable value (indices + the parameters that produced them). Samplers
produce plans, the data loader gathers the frames, widgets draw them and tests check them.
No plan ever wraps past the end of a video: a wrap is a hidden cut that a speed or
arrow-of-time head can exploit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


class VideoTooShortError(ValueError):
    """A plan needs more frames than the video has (the caller decides: skip and report)."""

    def __init__(self, needed: int, available: int, what: str = "plan"):
        super().__init__(f"{what} needs {needed} frames, video has {available}")
        self.needed, self.available = needed, available


@dataclass(frozen=True)
class Plan:
    """Frame indices of one clip plus the parameters that produced them.

    `indices` is an int64 array into the video's frames (possibly decreasing for reversed
    playback); `kind` names the generator (e.g. "constant", "speed_change"); `params` holds its
    parameters (e.g. {"stride": 2, "start": 17}) so that labels and plots can be derived.
    """

    indices: np.ndarray
    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "indices", np.asarray(self.indices, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"Plan({self.kind}: {args}; indices={self.indices.tolist()})"


@dataclass(frozen=True)
class Sample:
    """One training example before frames are gathered: clip plans plus integer labels.

    Most tasks produce one plan; contrastive branches add a key clip, playback-order tasks
    several. `labels` maps a head name to its class index (e.g. {"speed": 4, "loc": 6}).
    """

    plans: tuple[Plan, ...]
    labels: dict[str, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "plans", tuple(self.plans))


def constant_plan(
    num_frames: int, clip_len: int, stride: int, rng: np.random.Generator, *, reverse: bool = False
) -> Plan:
    """`clip_len` frames at a constant `stride` from a random start; `reverse` plays them backwards.

    The span (clip_len - 1) * stride + 1 must fit inside the video: no wrapping.
    """
    if clip_len < 1 or stride < 1:
        raise ValueError(f"clip_len and stride must be >= 1, got {clip_len}, {stride}")
    span = (clip_len - 1) * stride + 1
    if span > num_frames:
        raise VideoTooShortError(span, num_frames, f"constant plan (K={clip_len}, stride={stride})")
    start = int(rng.integers(0, num_frames - span + 1))
    indices = start + stride * np.arange(clip_len)
    if reverse:
        indices = indices[::-1]
    return Plan(indices, "constant", {"stride": stride, "start": start, "reverse": reverse})


def uniform_plans(num_frames: int, clip_len: int, stride: int, count: int) -> list[Plan]:
    """`count` evenly spaced constant-stride clips covering the video (test-time protocol).

    Deterministic: the first clip starts at frame 0, the last ends at the last frame that fits.
    A video shorter than one clip raises `VideoTooShortError`.
    """
    span = (clip_len - 1) * stride + 1
    if span > num_frames:
        raise VideoTooShortError(span, num_frames, f"test clips (K={clip_len}, stride={stride})")
    starts = np.linspace(0, num_frames - span, num=count).round().astype(np.int64)
    return [
        Plan(int(s) + stride * np.arange(clip_len), "constant", {"stride": stride, "start": int(s), "reverse": False})
        for s in starts
    ]
