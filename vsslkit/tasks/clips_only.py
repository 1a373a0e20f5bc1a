"""No pretext head: clips only, for the "contrastive only" (CL) baseline of the thesis' ablations.

Query and key clips come from the same video at independently drawn constant speeds, so the MoCo
branch alone must make them agree (same-context contrastive learning, ch. 3.3). The task loss is
zero; combine it with `with_key_clip` + `MoCo` (`PretrainConfig(task="none", contrastive=True)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from vsslkit.plans import Sample, VideoTooShortError, constant_plan, constant_span
from vsslkit.tasks.pace import check_common


class NoHeads(nn.Module):
    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}


@dataclass(frozen=True)
class ClipsOnlyTask:
    """One constant-speed clip per sample (speed uniform in `speeds`), no labels, zero loss."""

    clip_len: int = 16
    speeds: tuple[int, ...] = (1, 2, 3, 4)
    extra_frames: int = 0
    name: ClassVar[str] = "none"

    def __post_init__(self) -> None:
        object.__setattr__(self, "speeds", tuple(int(s) for s in self.speeds))
        check_common(self.clip_len, self.extra_frames, self.speeds, self.name)

    @property
    def input_frames(self) -> int:
        return self.clip_len + self.extra_frames

    @property
    def heads(self) -> dict[str, int]:
        return {}

    @property
    def min_frames(self) -> int:
        return max(constant_span(self.input_frames, p) for p in self.speeds)

    def sample(self, num_frames: int, rng: np.random.Generator) -> Sample:
        if num_frames < self.min_frames:
            raise VideoTooShortError(self.min_frames, num_frames, f"task {self.name}")
        p = self.speeds[int(rng.integers(len(self.speeds)))]
        return Sample((constant_plan(num_frames, self.input_frames, p, rng),), {})

    def label_of(self, params: dict[str, Any]) -> dict[str, int]:
        return {}

    def params_of(self, labels: dict[str, int]) -> dict[str, Any]:
        return {}

    def make_heads(self, feature_dim: int) -> nn.Module:
        return NoHeads()

    def loss(self, outputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        return torch.zeros(()), {"loss": 0.0}
