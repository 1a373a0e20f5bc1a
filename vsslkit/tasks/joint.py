"""Several tasks trained together on one backbone, with weighted losses (the one combiner).

    Joint({"pretext": SpeedChangeFineTask(), "moco": MoCo(key_task=SpeedChangeFineTask())},
          weights={"pretext": 1.0, "moco": 0.5})                    # thesis eq. 4.3
    Joint({"cls": ..., "track": ..., "dir": ArrowOfTimeTask()},
          weights={"cls": 1.0, "track": 25.0, "dir": 2.0})         # seed 001: l_cls + w1 l_track + w2 l_dir

Each branch's plans, labels, extras, outputs and metrics get the prefix "<branch>." so that no
branch misreads another's clip; a branch may still read another's clip by its full name (MoCo's
query "pretext.clip"). Branches sample in the order given, from the same generator. The total
loss is the weighted sum; metrics are "<branch>.<metric>" plus the total "loss".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from vsslkit.plans import Sample, VideoTooShortError
from vsslkit.tasks.base import Prefixed, label_name


def _split(values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)}


class JointModule(nn.Module):
    """One module per branch; forward gives each branch its prefixed view of the features."""

    def __init__(self, branches: dict[str, nn.Module], order: tuple[str, ...]):
        super().__init__()
        self.branches = nn.ModuleDict(branches)
        self.order = order

    def forward(self, features: Any) -> dict[str, torch.Tensor]:
        outputs = {}
        for name in self.order:
            out = self.branches[name](Prefixed(features, name + "."))
            outputs.update({f"{name}.{k}": v for k, v in out.items()})
        return outputs

    def bind_dataset(self, num_videos: int, groups: Any = None) -> None:
        for module in self.branches.values():
            if hasattr(module, "bind_dataset"):
                module.bind_dataset(num_videos, groups)

    def before_epoch(self, epoch: int) -> None:
        for module in self.branches.values():
            if hasattr(module, "before_epoch"):
                module.before_epoch(epoch)

    @torch.no_grad()
    def after_optimizer_step(self, backbone: nn.Module) -> None:
        for module in self.branches.values():
            if hasattr(module, "after_optimizer_step"):
                module.after_optimizer_step(backbone)


@dataclass(frozen=True)
class Joint:
    """Branches (name → task) with loss weights (default 1 each); see the module docstring."""

    tasks: Mapping[str, Any]
    weights: Mapping[str, float] = field(default_factory=dict)
    name: str = "joint"

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", dict(self.tasks))
        if not self.tasks:
            raise ValueError("Joint needs at least one task")
        bad = [k for k in self.tasks if not k or "." in k]
        if bad:
            raise ValueError(f"branch names must be non-empty and contain no '.', got {bad}")
        unknown = sorted(set(self.weights) - set(self.tasks))
        if unknown:
            raise ValueError(f"weights for unknown branches {unknown}; branches: {sorted(self.tasks)}")
        object.__setattr__(self, "weights", {k: float(self.weights.get(k, 1.0)) for k in self.tasks})

    @property
    def heads(self) -> dict[str, int]:
        return {f"{b}.{h}": n for b, t in self.tasks.items() for h, n in t.heads.items()}

    @property
    def min_frames(self) -> int:
        return max(t.min_frames for t in self.tasks.values())

    @property
    def input_frames(self) -> int:
        return next(iter(self.tasks.values())).input_frames

    @property
    def primary(self) -> Any:
        """The first branch: the one that same-batch training enumerates and pretext-eval scores."""
        return self.tasks[self.primary_name]

    @property
    def primary_name(self) -> str:
        """The first branch's name."""
        return next(iter(self.tasks))

    @property
    def together(self) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(f"{b}.{n}" for n in group) for b, t in self.tasks.items()
                     for group in getattr(t, "together", ()))

    def sample(self, num_frames: int, rng: np.random.Generator, *, epoch: int = 0, context: Any = None) -> Sample:
        if num_frames < self.min_frames:
            raise VideoTooShortError(self.min_frames, num_frames, "joint task")
        return self.combine({b: t.sample(num_frames, rng, epoch=epoch, context=context) for b, t in self.tasks.items()})

    def combine(self, samples: Mapping[str, Sample]) -> Sample:
        """One Sample from one Sample per branch, every name prefixed with its branch."""
        plans, labels, extras = {}, {}, {}
        for branch, sample in samples.items():
            s = sample.prefixed(branch + ".")
            plans.update(s.plans)
            labels.update(s.labels)
            extras.update(s.extras)
        return Sample(plans, labels, extras)

    def make_module(self, backbone: nn.Module) -> JointModule:
        # Momentum branches are built first: this is the order the pre-redesign code initialised
        # parameters in (MoCo's projection before the task heads), kept so that a run reproduces
        # that code's bit for bit (data_scripts/pretrain_fingerprint.py). Forward and sampling
        # follow the order given.
        build = sorted(self.tasks, key=lambda b: not getattr(self.tasks[b], "momentum_branch", False))
        modules = {b: self.tasks[b].make_module(backbone) for b in build}
        return JointModule({b: modules[b] for b in self.tasks}, tuple(self.tasks))

    def pixel_labels(self, clips: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
                     augment: dict[str, Any]) -> dict[str, torch.Tensor]:
        out = dict(labels)
        for b, t in self.tasks.items():
            if hasattr(t, "pixel_labels"):
                p = b + "."
                own = t.pixel_labels(_split(clips, p), _split(labels, p), _split(augment, p))
                out.update({p + k: v for k, v in own.items()})
        return out

    def label_name(self, head: str, index: int) -> str:
        branch, _, own = head.partition(".")
        return label_name(self.tasks[branch], own, index)

    def loss(self, outputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
             extras: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        total = None
        metrics: dict[str, float] = {}
        # Unprefixed labels belong to the video (the data layer's "class"): every branch sees
        # them under their own name, its own prefixed labels taking precedence (a supervised branch).
        shared = {k: v for k, v in labels.items() if "." not in k}
        for b, t in self.tasks.items():
            p = b + "."
            loss, own = t.loss(_split(outputs, p), {**shared, **_split(labels, p)}, _split(extras or {}, p))
            weighted = self.weights[b] * loss
            total = weighted if total is None else total + weighted
            metrics.update({p + k: v for k, v in own.items()})
        metrics["loss"] = float(total.detach())
        return total, metrics
