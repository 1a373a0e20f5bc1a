"""Supervised fine-tuning as a task: a random constant-stride clip, head "class" = video label.

The label is the video's, not the plan's: `sample` returns no labels and the data layer adds
`labels["class"]` (ClipDataset does). Test time uses `test_plans` (the thesis' 10 uniformly
spaced clips per video, ch. 3.5.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from vsslkit.models.heads import MultiHead
from vsslkit.plans import Plan, Sample, VideoTooShortError, constant_plan, constant_span, uniform_plans
from vsslkit.tasks.base import OnPooled, classification_loss


@dataclass(frozen=True, kw_only=True)
class SupervisedTask:
    """Action recognition: K frames at a fixed `stride` from a uniformly random start."""

    num_classes: int
    clip_len: int = 16
    stride: int = 1
    extra_frames: int = 0
    name: ClassVar[str] = "supervised"

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise ValueError(f"{self.name}: num_classes must be >= 2, got {self.num_classes}")
        if self.clip_len < 1 or self.stride < 1:
            raise ValueError(f"{self.name}: clip_len and stride must be >= 1, got {self.clip_len}, {self.stride}")
        if self.extra_frames not in (0, 1):
            raise ValueError(f"{self.name}: extra_frames must be 0 (RGB) or 1 (residual frames), got {self.extra_frames}")

    @property
    def input_frames(self) -> int:
        return self.clip_len + self.extra_frames

    @property
    def heads(self) -> dict[str, int]:
        return {"class": self.num_classes}

    @property
    def min_frames(self) -> int:
        return constant_span(self.input_frames, self.stride)

    def label_of(self, params: dict[str, Any]) -> dict[str, int]:
        label = int(params["class"])
        if not 0 <= label < self.num_classes:
            raise ValueError(f"{self.name}: class {label} outside [0, {self.num_classes})")
        return {"class": label}

    def params_of(self, labels: dict[str, int]) -> dict[str, Any]:
        return {"class": self.label_of(labels)["class"]}

    def sample(self, num_frames: int, rng: np.random.Generator, *, epoch: int = 0, context: Any = None) -> Sample:
        if num_frames < self.min_frames:
            raise VideoTooShortError(self.min_frames, num_frames, f"task {self.name}")
        return Sample({"clip": constant_plan(num_frames, self.input_frames, self.stride, rng)})

    def test_plans(self, num_frames: int, count: int = 10) -> list[Plan]:
        """`count` evenly spaced clips covering the video, for clip-averaged video predictions."""
        return uniform_plans(num_frames, self.input_frames, self.stride, count)

    def label_name(self, head: str, index: int) -> str:
        return f"class {self.label_of({head: index})[head]}"

    def make_module(self, backbone: nn.Module) -> nn.Module:
        return OnPooled(MultiHead(int(backbone.feature_dim), self.heads))

    def loss(self, outputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
             extras: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        return classification_loss(outputs, labels, self.heads)
