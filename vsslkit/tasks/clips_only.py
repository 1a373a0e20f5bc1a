"""No pretext head: clips only, for the "contrastive only" (CL) baseline of the thesis' ablations.

Query and key clips come from the same video at independently drawn constant speeds, so the MoCo
branch alone must make them agree (same-context contrastive learning, ch. 3.3). The task loss is
zero; combine it with MoCo (`PretrainConfig(task="none", moco=MoCoConfig())`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from vsslkit.plans import Plan, constant_plan, constant_plan_at, constant_span
from vsslkit.tasks.base import NoOutputs, single_clip_sample
from vsslkit.tasks.pace import check_common


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

    def sample_params(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"p": self.speeds[int(rng.integers(len(self.speeds)))]}

    def plan_for(self, params: dict[str, Any], num_frames: int, rng: np.random.Generator, *, start: int | None = None) -> Plan:
        if start is None:
            return constant_plan(num_frames, self.input_frames, int(params["p"]), rng)
        return constant_plan_at(num_frames, self.input_frames, int(params["p"]), start)

    def sample(self, num_frames: int, rng: np.random.Generator, *, epoch: int = 0, context: Any = None):
        return single_clip_sample(self, num_frames, rng)

    def label_of(self, params: dict[str, Any]) -> dict[str, int]:
        return {}

    def params_of(self, labels: dict[str, int]) -> dict[str, Any]:
        return {}

    def make_module(self, backbone: nn.Module) -> nn.Module:
        return NoOutputs()

    def loss(self, outputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
             extras: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        return torch.zeros(()), {"loss": 0.0}
