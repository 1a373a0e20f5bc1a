"""Backbone + a task's module as one trainable model: what `fit` trains for every pretext task.

One step: (labels from the augmented pixels, when the task computes them) → `Features` over the
batch's named clips → the task's module → the task's loss. The total pretext loss of a `Joint`
is its weighted sum (thesis: L = L_loc + L_sc + λ L_ctr, λ = 0.5 in ch. 4; seed 001:
l_cls + 25 l_track + 2 l_dir). After every optimiser step `after_optimizer_step` lets momentum
branches move (EMA, queues): never before backward (an in-place queue write breaks autograd).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vsslkit.tasks.base import Features, Task
from vsslkit.tasks.joint import Joint


class PretextModel(nn.Module):
    """`backbone` + `task.make_module(backbone)`; batches are `{"clips": {name: (B, C, T, H, W)},
    "labels": {name: (B, ...)}, "extras": {...}, "augment": {...}}` (see `vsslkit.data.clips`)."""

    def __init__(self, backbone: nn.Module, task: Task):
        super().__init__()
        if not hasattr(backbone, "feature_dim"):
            raise TypeError("the backbone must expose .feature_dim (see vsslkit.models.build_backbone)")
        self.backbone = backbone
        self.task = task
        self.head = task.make_module(backbone)

    def features(self, clips: dict[str, torch.Tensor], extras: dict[str, torch.Tensor] | None = None) -> Features:
        return Features(self.backbone, clips, together=getattr(self.task, "together", ()), extras=extras)

    def forward(self, clips: dict[str, torch.Tensor], extras: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Every output of the task's module for a dict of named clips (and the batch's extras)."""
        return self.head(self.features(clips, extras))

    def predict(self, clips: torch.Tensor | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Outputs of the primary task's heads for one-clip inputs `(B, C, T, H, W)`, or for its
        named clips (a playback-order tuple), unprefixed (what pretext evaluation and the
        notebooks' explorers score)."""
        joint = isinstance(self.task, Joint)
        head = self.head.branches[self.task.primary_name] if joint else self.head
        primary = self.task.primary if joint else self.task
        named = clips if isinstance(clips, dict) else {"clip": clips}
        return head(Features(self.backbone, named, together=getattr(primary, "together", ())))

    def training_step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        labels = batch["labels"]
        if hasattr(self.task, "pixel_labels"):
            labels = self.task.pixel_labels(batch["clips"], labels, batch.get("augment", {}))
        outputs = self(batch["clips"], batch.get("extras", {}))
        return self.task.loss(outputs, labels, batch.get("extras", {}))

    def bind_dataset(self, num_videos: int, groups: Any = None) -> None:
        """Tell modules that keep per-video state (ASCNet's memory bank) the training set's size."""
        if hasattr(self.head, "bind_dataset"):
            self.head.bind_dataset(num_videos, groups)

    def before_epoch(self, epoch: int) -> None:
        """Called by `fit` before each epoch's loader starts (ASCNet publishes its table here)."""
        if hasattr(self.head, "before_epoch"):
            self.head.before_epoch(epoch)

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        if hasattr(self.head, "after_optimizer_step"):
            self.head.after_optimizer_step(self.backbone)
