"""Frame-index plans: which frames of a video make a clip.

A plan is a small printable value (indices + the parameters that produced them). Samplers
produce plans, the data loader gathers the frames, widgets draw them and tests check them.
No plan ever wraps past the end of a video: a wrap is a hidden cut that a speed or
arrow-of-time head can exploit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class VideoTooShortError(ValueError):
    """A plan needs more frames than the video has (the caller decides: skip and report)."""

    def __init__(self, needed: int, available: int, what: str = "plan"):
        super().__init__(f"{what} needs {needed} frames, video has {available}")
        self.needed, self.available = needed, available


IGNORE_INDEX = -100
"""The label value a head skips (PyTorch's `cross_entropy` default): e.g. a motion label of a
motionless clip. Float labels use NaN for the same purpose."""


@dataclass(frozen=True)
class Plan:
    """Frame indices of one clip plus the parameters that produced them.

    `indices` is an int64 array into the video's frames (possibly decreasing for reversed
    playback); `kind` names the generator (e.g. "constant", "speed_change"); `params` holds its
    parameters (e.g. {"stride": 2, "start": 17}) so that labels and plots can be derived.
    `video` is None for the item's own video, or the index of *another* video of the dataset
    (ASCNet's positive comes from a different video than its anchor).
    """

    indices: np.ndarray
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    video: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "indices", np.asarray(self.indices, dtype=np.int64))
        if self.video is not None:
            object.__setattr__(self, "video", int(self.video))

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        where = "" if self.video is None else f"video {self.video}, "
        return f"Plan({self.kind}: {where}{args}; indices={self.indices.tolist()})"


Label = int | float | np.ndarray


@dataclass(frozen=True)
class Sample:
    """One training example before frames are gathered: **named** clip plans, labels and extras.

    `plans` maps a clip name to its plan: `{"clip": ...}` for one-clip tasks, `{"clip": ...,
    "key": ...}` under MoCo (names prefixed by `Joint`), `{"clip0": ..., "clip2": ...}` for
    playback order. Naming them (rather than relying on positions) is what lets several tasks
    share a batch without misreading each other's clips.
    `labels` maps a label name to an int class (`IGNORE_INDEX` to skip it), a float (NaN to
    skip) or an array; `extras` holds float arrays that are inputs to a loss rather than
    targets (e.g. a patch's affine transform). All three travel through `collate`.
    """

    plans: Mapping[str, Plan]
    labels: Mapping[str, Label] = field(default_factory=dict)
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.plans, Mapping):
            raise TypeError(f"Sample.plans must map clip names to plans, got {type(self.plans).__name__}")
        if not self.plans:
            raise ValueError("a Sample needs at least one plan")
        object.__setattr__(self, "plans", dict(self.plans))
        object.__setattr__(self, "labels", dict(self.labels))
        object.__setattr__(self, "extras", {k: np.asarray(v, dtype=np.float32) for k, v in self.extras.items()})

    @property
    def plan(self) -> Plan:
        """The plan of a one-clip sample (the "clip" plan; an error when the name is ambiguous)."""
        if "clip" in self.plans:
            return self.plans["clip"]
        if len(self.plans) == 1:
            return next(iter(self.plans.values()))
        raise KeyError(f"this sample has several plans {sorted(self.plans)}; pick one by name")

    def prefixed(self, prefix: str) -> Sample:
        """The same sample with every plan, label and extra name prefixed (see `tasks.Joint`)."""
        return Sample({prefix + k: v for k, v in self.plans.items()}, {prefix + k: v for k, v in self.labels.items()},
                      {prefix + k: v for k, v in self.extras.items()})


@dataclass(frozen=True)
class ItemContext:
    """What a sampler may know beyond its own video: its index among the dataset's videos, every
    video's frame count and group (a cross-video plan picks another video by index and must fit
    in *its* frames; a group is e.g. UCF101's "gXX", clips cut from one long video)."""

    index: int
    num_frames: tuple[int, ...]
    groups: tuple[str, ...] | None = None


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


# --- speed change plans ---------------------------------------------------------------------
#
# Convention (thesis fig. 3.2 and ch. 4.3): a speed change clip c[0:L] is played at stride r1
# for its first part c[0:change_at] and at stride r2 for its second part c[change_at:L]. The
# step INTO frame `change_at` already has length r2, so with d[i] = indices[i+1] - indices[i]:
#
#     d[i] == r1  for i <  change_at - 1      (change_at - 1 steps between first-part frames)
#     d[i] == r2  for i >= change_at - 1      (L - change_at steps, the first one into c[change_at])
#
# i.e. `change_at` is the 0-based index of the first frame of the second part, and the speed
# change happens "between frames change_at-1 and change_at". Example, L=8, r1=1, r2=2,
# change_at=4, start=0: indices 0 1 2 3 5 7 9 11.


def constant_span(clip_len: int, stride: int) -> int:
    """Frames covered by a constant-stride clip (first to last frame, inclusive)."""
    return (clip_len - 1) * stride + 1


def speed_change_span(clip_len: int, r1: int, r2: int, change_at: int) -> int:
    """Frames covered by a speed change clip: (change_at-1) steps of r1, clip_len-change_at of r2."""
    return (change_at - 1) * r1 + (clip_len - change_at) * r2 + 1


def max_span(clip_len: int, strides: tuple[int, ...] | list[int]) -> int:
    """Largest span of ANY plan (constant or speed change) whose steps come from `strides`.

    Every step is at most max(strides), so the constant clip at the largest stride bounds them
    all; tasks use this (or the exact maximum over their transforms) as `min_frames`.
    """
    if not strides:
        raise ValueError("max_span needs at least one stride")
    return constant_span(clip_len, max(strides))


def speed_change_indices(start: int, clip_len: int, r1: int, r2: int, change_at: int) -> np.ndarray:
    """Indices of a speed change clip starting at frame `start` (see the convention above)."""
    _check_speed_change(clip_len, r1, r2, change_at)
    steps = np.where(np.arange(clip_len - 1) < change_at - 1, r1, r2)
    return start + np.concatenate([[0], np.cumsum(steps)]).astype(np.int64)


def speed_change_plan(
    num_frames: int,
    clip_len: int,
    r1: int,
    r2: int,
    change_at: int,
    rng: np.random.Generator,
    *,
    start: int | None = None,
) -> Plan:
    """A clip at stride r1 for frames [0, change_at) and r2 from frame `change_at` on.

    The start is uniform over every position where the whole clip fits (or `start` when
    given, e.g. to give all transforms of a same-batch group the same first frame); a video
    shorter than the span raises `VideoTooShortError` rather than wrapping.
    `2 <= change_at <= clip_len - 1`, so that each part shows at least one step of its speed.
    r1 == r2 is allowed (the indices then equal a constant clip's, the kind stays "speed_change").
    """
    _check_speed_change(clip_len, r1, r2, change_at)
    span = speed_change_span(clip_len, r1, r2, change_at)
    what = f"speed change plan (K={clip_len}, r1={r1}, r2={r2}, change_at={change_at})"
    start = _pick_start(num_frames, span, rng, start, what)
    indices = speed_change_indices(start, clip_len, r1, r2, change_at)
    return Plan(indices, "speed_change", {"r1": r1, "r2": r2, "change_at": change_at, "start": start})


def constant_plan_at(num_frames: int, clip_len: int, stride: int, start: int) -> Plan:
    """A constant-stride clip from a given `start` (same-batch groups share their first frame)."""
    if clip_len < 1 or stride < 1:
        raise ValueError(f"clip_len and stride must be >= 1, got {clip_len}, {stride}")
    span = constant_span(clip_len, stride)
    start = _pick_start(num_frames, span, None, start, f"constant plan (K={clip_len}, stride={stride})")
    return Plan(start + stride * np.arange(clip_len), "constant", {"stride": stride, "start": start, "reverse": False})


def _check_speed_change(clip_len: int, r1: int, r2: int, change_at: int) -> None:
    if r1 < 1 or r2 < 1:
        raise ValueError(f"strides must be >= 1, got r1={r1}, r2={r2}")
    if not 2 <= change_at <= clip_len - 1:
        raise ValueError(
            f"change_at must be in [2, clip_len-1] = [2, {clip_len - 1}] so both parts show a step, got {change_at}"
        )


def _pick_start(num_frames: int, span: int, rng: np.random.Generator | None, start: int | None, what: str) -> int:
    if span > num_frames:
        raise VideoTooShortError(span, num_frames, what)
    if start is None:
        if rng is None:
            raise ValueError("either rng or start is required")
        return int(rng.integers(0, num_frames - span + 1))
    if not 0 <= start <= num_frames - span:
        raise ValueError(f"{what}: start {start} does not fit, must be in [0, {num_frames - span}]")
    return int(start)
