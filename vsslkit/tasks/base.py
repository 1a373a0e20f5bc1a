"""The shape every task shares: what it samples, what its module reads, how its loss is scored.

A task is a small frozen dataclass with
- `name`, `heads: dict[str, int]` (classification heads → classes; `{}` for none), `min_frames`,
  `input_frames` (frames per plan: K, or K+1 for residual input);
- `sample(num_frames, rng, *, epoch=0, context=None) -> Sample` (named plans, labels, extras);
- `make_module(backbone) -> nn.Module` whose `forward(features: Features)` returns a dict of
  outputs (a momentum branch copies the backbone here, which is why it gets the backbone);
- `loss(outputs, labels, extras) -> (loss, metrics)`;
and, only where it needs them:
- `pixel_labels(clips, labels, augment) -> labels`: labels computed from the augmented clips
  (after crop and flip; the task decides what a flip does to its labels);
- `module.after_optimizer_step(backbone)`: EMA, queues, memory banks (state lives in the module,
  so checkpoints hold it);
- `label_name(head, index) -> str`: how widgets and reports print a class;
- `together: tuple[tuple[str, ...], ...]`: clip names that go through the backbone in one
  forward (so batch norm sees them together, e.g. the n clips of a playback-order tuple).

`Features` is the per-step object heads read: it runs the backbone at most once per clip (or
once per `together` group) and hands out pooled vectors and feature maps by clip name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vsslkit.plans import IGNORE_INDEX, Sample, VideoTooShortError


class Task(Protocol):
    """What `PretextModel`, `Joint` and `ClipDataset` need from a task (see the module docstring)."""

    name: str

    @property
    def heads(self) -> dict[str, int]: ...

    @property
    def min_frames(self) -> int: ...

    def sample(self, num_frames: int, rng: np.random.Generator, *, epoch: int = 0, context: Any = None) -> Sample: ...

    def make_module(self, backbone: nn.Module) -> nn.Module: ...

    def loss(self, outputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
             extras: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]: ...


class Features:
    """The backbone's view of one batch: pooled vectors and feature maps per named clip.

    `clips` maps a clip name to a float `(B, C, T, H, W)` tensor. Nothing runs until a head
    asks; each clip (or `together` group) goes through the backbone once per kind of request
    and is cached, so a task head and a MoCo query share one forward. `together` groups are
    concatenated along the batch for one forward (batch norm then sees every clip of the
    group) and split back.
    """

    def __init__(self, backbone: nn.Module, clips: Mapping[str, torch.Tensor], *,
                 together: Iterable[Iterable[str]] = (), extras: Mapping[str, torch.Tensor] | None = None):
        self.backbone = backbone
        self.clips = dict(clips)
        self.extras = dict(extras or {})
        self._group = {}
        for group in together:
            group = tuple(group)
            for name in group:
                if name not in self.clips:
                    raise KeyError(f"'together' names clip {name!r}, but the batch has {sorted(self.clips)}")
                self._group[name] = group
        self._pooled: dict[str, torch.Tensor] = {}
        self._maps: dict[tuple[str, str], torch.Tensor] = {}

    def clip(self, name: str) -> torch.Tensor:
        """The input tensor of a clip (e.g. a MoCo key goes through the *key* encoder instead)."""
        if name not in self.clips:
            raise KeyError(f"no clip {name!r} in this batch; clips: {sorted(self.clips)}")
        return self.clips[name]

    def extra(self, name: str) -> torch.Tensor:
        """A per-item extra of the batch that a module needs in its forward (ASCNet's video index for its
        memory bank; the random draws that place TimeCycle's patch, which depend on the augmented pixels)."""
        if name not in self.extras:
            raise KeyError(f"no extra {name!r} in this batch; extras: {sorted(self.extras)}")
        return self.extras[name]

    def pooled(self, name: str) -> torch.Tensor:
        """`(B, D)`: the backbone's pooled output for clip `name`."""
        if name not in self._pooled:
            group = self._group.get(name, (name,))
            x = torch.cat([self.clip(n) for n in group]) if len(group) > 1 else self.clip(name)
            out = self.backbone(x)
            for n, part in zip(group, out.split([self.clip(n).shape[0] for n in group])):
                self._pooled[n] = part
        return self._pooled[name]

    def maps(self, name: str, layer: str) -> torch.Tensor:
        """`(B, C, T, H, W)`: the feature map of clip `name` at `layer` (e.g. "pool4", "res4")."""
        if (name, layer) not in self._maps:
            group = self._group.get(name, (name,))
            x = torch.cat([self.clip(n) for n in group]) if len(group) > 1 else self.clip(name)
            out = self.backbone.features(x, layers=(layer,))[layer]
            for n, part in zip(group, out.split([self.clip(n).shape[0] for n in group])):
                self._maps[(n, layer)] = part
        return self._maps[(name, layer)]


class Prefixed:
    """A view of `Features` for one branch of a `Joint`: unqualified names get the branch's prefix.

    A name that already contains a "." (e.g. MoCo's query "pretext.clip") is used as it is, so a
    branch can read another branch's clip.
    """

    def __init__(self, features: Features | Prefixed, prefix: str):
        self.features, self.prefix = features, prefix

    def name(self, name: str) -> str:
        return name if "." in name else self.prefix + name

    def clip(self, name: str) -> torch.Tensor:
        return self.features.clip(self.name(name))

    def extra(self, name: str) -> torch.Tensor:
        return self.features.extra(self.name(name))

    def pooled(self, name: str) -> torch.Tensor:
        return self.features.pooled(self.name(name))

    def maps(self, name: str, layer: str) -> torch.Tensor:
        return self.features.maps(self.name(name), layer)


class OnPooled(nn.Module):
    """Runs a head (e.g. `models.heads.MultiHead`) on the pooled features of one named clip."""

    def __init__(self, head: nn.Module, clip: str = "clip"):
        super().__init__()
        self.head, self.clip = head, clip

    def forward(self, features: Features) -> dict[str, torch.Tensor]:
        return self.head(features.pooled(self.clip))


class NoOutputs(nn.Module):
    """A task with nothing to predict (clips only: the contrastive-only baseline)."""

    def forward(self, features: Features) -> dict[str, torch.Tensor]:
        return {}


def classification_loss(
    outputs: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    heads: Mapping[str, int],
    weights: Mapping[str, float] | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of per-head cross entropies; metrics `<head>_loss`, `<head>_acc` and `loss`.

    Labels equal to `IGNORE_INDEX` are skipped (loss and accuracy); labels for other names
    (e.g. the video's "class" during pretraining) are ignored.
    """
    total = None
    metrics: dict[str, float] = {}
    for name in heads:
        if name not in outputs:
            raise KeyError(f"no output for head {name!r}; outputs have {sorted(outputs)}")
        if name not in labels:
            raise KeyError(f"no labels for head {name!r}; labels have {sorted(labels)}")
        logits, target = outputs[name], labels[name].to(outputs[name].device).long()
        keep = target != IGNORE_INDEX
        head_loss = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX) if keep.any() else logits.sum() * 0.0
        weight = 1.0 if weights is None else float(weights.get(name, 1.0))
        total = weight * head_loss if total is None else total + weight * head_loss
        metrics[f"{name}_loss"] = float(head_loss.detach())
        hits = logits.detach().argmax(1) == target
        metrics[f"{name}_acc"] = float(hits[keep].float().mean()) if keep.any() else float("nan")
    if total is None:
        raise ValueError("classification_loss needs at least one head")
    metrics["loss"] = float(total.detach())
    return total, metrics


def single_clip_sample(task: Any, num_frames: int, rng: np.random.Generator) -> Sample:
    """The shared `sample` body of one-clip tasks: draw params, plan them as "clip", label them.

    A video shorter than `task.min_frames` is refused whatever would be drawn (the data layer
    skips and reports it), so a label never depends on a video's length.
    """
    if num_frames < task.min_frames:
        raise VideoTooShortError(task.min_frames, num_frames, f"task {task.name}")
    params = task.sample_params(rng)
    return Sample({"clip": task.plan_for(params, num_frames, rng)}, task.label_of(params))


def label_name(task: Any, head: str, index: int) -> str:
    """How a class of a head reads: the task's own `label_name` when it has one, else its params."""
    own = getattr(task, "label_name", None)
    if own is not None:
        return own(head, index)
    params = task.params_of({head: index})
    return " ".join(f"{key}={value}" for key, value in params.items())
