"""Backbone + task heads (+ MoCo branch) as one trainable module, and the shared head/loss pieces.

Every task here is a set of linear classifiers on pooled backbone features trained with cross
entropy (thesis eqs. 3.1, 4.1, 4.2); the total pretext loss is the unweighted sum over heads
(L = L_loc + L_sc, ch. 4.4.3) plus `ctr_weight` times the contrastive loss (λ = 0.25 in
ch. 3, 0.5 in ch. 4, eq. 3.3 / 4.3).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn


class Task(Protocol):
    """What `PretextModel` needs from a task (see docs/architecture.md)."""

    name: str

    @property
    def heads(self) -> dict[str, int]: ...

    def make_heads(self, feature_dim: int) -> nn.Module: ...

    def loss(self, outputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]: ...


class LinearHeads(nn.Module):
    """One linear classifier per head on the same `(B, D)` features -> `{head: (B, classes)}`."""

    def __init__(self, feature_dim: int, heads: dict[str, int]):
        super().__init__()
        if not heads:
            raise ValueError("a task needs at least one head")
        self.classifiers = nn.ModuleDict({name: nn.Linear(feature_dim, n) for name, n in heads.items()})

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        if features.dim() != 2:
            raise ValueError(f"heads expect pooled features (B, D), got shape {tuple(features.shape)}")
        return {name: layer(features) for name, layer in self.classifiers.items()}


def classification_loss(
    outputs: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    heads: dict[str, int],
    weights: dict[str, float] | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum of per-head cross entropies; metrics `<head>_loss`, `<head>_acc` and `loss` as floats.

    Labels for other heads (e.g. the video's "class" during pretraining) are ignored.
    """
    total = None
    metrics: dict[str, float] = {}
    for name in heads:
        if name not in outputs:
            raise KeyError(f"no output for head {name!r}; outputs have {sorted(outputs)}")
        if name not in labels:
            raise KeyError(f"no labels for head {name!r}; labels have {sorted(labels)}")
        logits, target = outputs[name], labels[name].to(outputs[name].device).long()
        head_loss = F.cross_entropy(logits, target)
        weight = 1.0 if weights is None else float(weights.get(name, 1.0))
        total = weight * head_loss if total is None else total + weight * head_loss
        metrics[f"{name}_loss"] = float(head_loss.detach())
        metrics[f"{name}_acc"] = float((logits.detach().argmax(1) == target).float().mean())
    assert total is not None  # heads is never empty (LinearHeads and the tasks check it)
    metrics["loss"] = float(total.detach())
    return total, metrics


class PretextModel(nn.Module):
    """Backbone + the task's heads, optionally with a MoCo same-context branch.

    Batch format: `batch["clips"]` is a list of float `(B, C, T, H, W)` tensors, one per plan of
    the Samples (0 = the task clip, 1 = the key clip when contrastive); `batch["labels"]` maps a
    head name to a LongTensor `(B,)`. Call `after_optimizer_step()` after every optimiser step:
    it moves the key encoder (EMA) and enqueues this step's keys, which must not happen before
    backward (an in-place queue update breaks autograd).
    """

    def __init__(self, backbone: nn.Module, task: Task, *, contrastive: nn.Module | None = None, ctr_weight: float = 0.5):
        super().__init__()
        if not hasattr(backbone, "feature_dim"):
            raise TypeError("the backbone must expose .feature_dim (see vsslkit.models.build_backbone)")
        self.backbone = backbone
        self.task = task
        self.heads = task.make_heads(int(backbone.feature_dim))
        self.contrastive = contrastive
        self.ctr_weight = float(ctr_weight)
        self._pending_keys: list[torch.Tensor] = []
        if contrastive is not None:
            contrastive.sync_key_encoder(backbone)  # the key encoder starts as an exact copy

    def forward(self, clips: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.heads(self.backbone(clips))

    def training_step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        clips = batch["clips"]
        if isinstance(clips, torch.Tensor):
            clips = [clips]
        features = self.backbone(clips[0])
        loss, metrics = self.task.loss(self.heads(features), batch["labels"])
        metrics = {("task_loss" if k == "loss" else k): v for k, v in metrics.items()}
        if self.contrastive is not None:
            if len(clips) < 2:
                raise ValueError("the contrastive branch needs key clips in batch['clips'][1]; "
                                 "wrap the task with vsslkit.tasks.contrastive.with_key_clip")
            ctr_loss, ctr_metrics, keys = self.contrastive(features, clips[1])
            loss = loss + self.ctr_weight * ctr_loss
            metrics.update(ctr_metrics)
            if self.training:
                self._pending_keys.append(keys)
        metrics["loss"] = float(loss.detach())
        return loss, metrics

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """EMA-update the key encoder from the freshly stepped backbone, then enqueue the keys."""
        if self.contrastive is None:
            return
        self.contrastive.momentum_update(self.backbone)
        for keys in self._pending_keys:
            self.contrastive.enqueue(keys)
        self._pending_keys.clear()
