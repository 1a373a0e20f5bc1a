"""Pace prediction (Wang et al., thesis ch. 3 baseline): classify the constant playback stride.

Label = index of the stride in `speeds` (p - 1 for the default (1, 2, 3, 4)); the stride is drawn
uniformly. With `extra_frames=1` (residual input) a plan has K+1 frames at the same stride, so
each of the K differences spans exactly p source frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from vsslkit.models.heads import MultiHead
from vsslkit.plans import Plan, Sample, constant_plan, constant_plan_at, constant_span
from vsslkit.tasks.base import OnPooled, classification_loss, single_clip_sample


def check_common(clip_len: int, extra_frames: int, speeds: tuple[int, ...], what: str) -> None:
    """Shared argument checks of the speed tasks (a clear error instead of odd plans later)."""
    if clip_len < 2:
        raise ValueError(f"{what}: clip_len must be >= 2, got {clip_len}")
    if extra_frames not in (0, 1):
        raise ValueError(f"{what}: extra_frames must be 0 (RGB) or 1 (residual frames), got {extra_frames}")
    if not speeds or any(int(s) != s or s < 1 for s in speeds) or list(speeds) != sorted(set(speeds)):
        raise ValueError(f"{what}: speeds must be distinct increasing integers >= 1, got {speeds}")


@dataclass(frozen=True)
class PaceTask:
    """`len(speeds)` constant-speed classes; head "speed"."""

    clip_len: int = 16
    speeds: tuple[int, ...] = (1, 2, 3, 4)
    extra_frames: int = 0
    name: ClassVar[str] = "pace"

    def __post_init__(self) -> None:
        object.__setattr__(self, "speeds", tuple(int(s) for s in self.speeds))
        check_common(self.clip_len, self.extra_frames, self.speeds, self.name)

    @property
    def input_frames(self) -> int:
        """Frames per plan: K, or K+1 when the loader feeds K residual differences."""
        return self.clip_len + self.extra_frames

    @property
    def heads(self) -> dict[str, int]:
        return {"speed": len(self.speeds)}

    @property
    def min_frames(self) -> int:
        return max(self.span_of(p) for p in self.transforms())

    def transforms(self) -> list[dict[str, Any]]:
        """Every concrete transform, in label order."""
        return [{"p": p} for p in self.speeds]

    def span_of(self, params: dict[str, Any]) -> int:
        return constant_span(self.input_frames, int(params["p"]))

    def label_of(self, params: dict[str, Any]) -> dict[str, int]:
        p = int(params["p"])
        if p not in self.speeds:
            raise ValueError(f"{self.name}: speed {p} not in {self.speeds}")
        return {"speed": self.speeds.index(p)}

    def params_of(self, labels: dict[str, int]) -> dict[str, Any]:
        label = int(labels["speed"])
        if not 0 <= label < len(self.speeds):
            raise ValueError(f"{self.name}: speed label {label} outside [0, {len(self.speeds)})")
        return {"p": self.speeds[label]}

    def sample_params(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"p": self.speeds[int(rng.integers(len(self.speeds)))]}

    def params_for_class(self, label: int, rng: np.random.Generator) -> dict[str, Any]:
        return self.params_of({"speed": label})

    def plan_for(self, params: dict[str, Any], num_frames: int, rng: np.random.Generator, *, start: int | None = None) -> Plan:
        p = int(params["p"])
        if start is None:
            return constant_plan(num_frames, self.input_frames, p, rng)
        return constant_plan_at(num_frames, self.input_frames, p, start)

    def sample(self, num_frames: int, rng: np.random.Generator, *, epoch: int = 0, context: Any = None) -> Sample:
        """One clip; a video shorter than `min_frames` is refused whatever speed was drawn."""
        return single_clip_sample(self, num_frames, rng)

    def label_name(self, head: str, index: int) -> str:
        return f"p={self.params_of({head: index})['p']}"

    def make_module(self, backbone: nn.Module) -> nn.Module:
        return OnPooled(MultiHead(int(backbone.feature_dim), self.heads))

    def loss(self, outputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
             extras: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        return classification_loss(outputs, labels, self.heads)
