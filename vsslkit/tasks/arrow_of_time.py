"""Arrow of time (seed 001 §3.5): is this clip played forward or backward?

One constant-stride clip; its plan is reversed (`reverse=True`, indices strictly decreasing) with
probability 1/2, and the label is read from that plan: 0 = forward, 1 = backward (the reference
code's convention). The seed author's public code instead assigned direction labels by batch
position and then reordered the rows, so its direction branch trained on noise (SPECS §4.3-1);
here a label can only come from the clip's own plan, which a test checks by shuffling a batch.

A horizontal flip does not change the direction of time, so flips are allowed. On a
time-symmetric dataset (synthetic set version 2: every class played backwards is another class or
itself) no observer can tell the direction: held-out accuracy must stay at chance (50 %).
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
from vsslkit.tasks.pace import check_common

DIRECTIONS = ("forward", "backward")


@dataclass(frozen=True)
class ArrowOfTimeTask:
    """Head "direction" (2 classes); the stride is drawn uniformly from `speeds` (default 1)."""

    clip_len: int = 16
    speeds: tuple[int, ...] = (1,)
    extra_frames: int = 0
    name: ClassVar[str] = "arrow-of-time"

    def __post_init__(self) -> None:
        object.__setattr__(self, "speeds", tuple(int(s) for s in self.speeds))
        check_common(self.clip_len, self.extra_frames, self.speeds, self.name)

    @property
    def input_frames(self) -> int:
        return self.clip_len + self.extra_frames

    @property
    def heads(self) -> dict[str, int]:
        return {"direction": 2}

    @property
    def min_frames(self) -> int:
        return max(constant_span(self.input_frames, p) for p in self.speeds)

    def sample_params(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"p": self.speeds[int(rng.integers(len(self.speeds)))], "reverse": bool(rng.integers(2))}

    def plan_for(self, params: dict[str, Any], num_frames: int, rng: np.random.Generator, *, start: int | None = None) -> Plan:
        p, reverse = int(params["p"]), bool(params["reverse"])
        if start is None:
            return constant_plan(num_frames, self.input_frames, p, rng, reverse=reverse)
        plan = constant_plan_at(num_frames, self.input_frames, p, start)
        if not reverse:
            return plan
        return Plan(plan.indices[::-1], "constant", {**plan.params, "reverse": True})

    def label_of(self, params: dict[str, Any]) -> dict[str, int]:
        return {"direction": int(bool(params["reverse"]))}

    def label_of_plan(self, plan: Plan) -> dict[str, int]:
        """The label read off the plan itself: backward iff its indices decrease."""
        steps = np.diff(plan.indices)
        if len(steps) == 0 or not (np.all(steps > 0) or np.all(steps < 0)):
            raise ValueError(f"{self.name}: a plan must be strictly monotonic to have a direction, got {plan}")
        return {"direction": int(steps[0] < 0)}

    def params_of(self, labels: dict[str, int]) -> dict[str, Any]:
        label = int(labels["direction"])
        if label not in (0, 1):
            raise ValueError(f"{self.name}: direction label {label} outside [0, 2)")
        return {"reverse": bool(label)}

    def sample(self, num_frames: int, rng: np.random.Generator, *, epoch: int = 0, context: Any = None) -> Sample:
        sample = single_clip_sample(self, num_frames, rng)
        assert sample.labels == self.label_of_plan(sample.plan)  # the label is the plan's, by construction
        return sample

    def label_name(self, head: str, index: int) -> str:
        return DIRECTIONS[self.params_of({head: index})["reverse"]]

    def make_module(self, backbone: nn.Module) -> nn.Module:
        return OnPooled(MultiHead(int(backbone.feature_dim), self.heads))

    def loss(self, outputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
             extras: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        return classification_loss(outputs, labels, self.heads)
