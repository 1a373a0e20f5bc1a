"""MoCo-v2 same-context contrastive branch (thesis ch. 3.3-3.4), combinable with any task.

Query = the task clip through the trained backbone + a 2-layer MLP projection (128-d); key =
another clip of the same video (independent start and speed transform) through a momentum copy
of backbone + projection. Negatives are a fixed-size ring buffer of past keys (2048 in the
thesis), kept as registered buffers so checkpoints hold them. InfoNCE with temperature 0.07
(eq. 3.2, dot product of L2-normalised vectors).

Order of operations (see `PretextModel`): loss with the current queue -> backward -> optimiser
step -> `momentum_update` -> `enqueue` (an in-place queue write before backward breaks autograd).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from vsslkit.plans import Sample, VideoTooShortError


class ProjectionHead(nn.Sequential):
    """Linear -> ReLU -> Linear to the contrastive space (MoCo-v2's MLP head)."""

    def __init__(self, feature_dim: int, dim: int = 128, hidden_dim: int | None = None):
        hidden = hidden_dim or feature_dim
        super().__init__(nn.Linear(feature_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE of normalised queries `(B, d)` vs their keys `(B, d)` and queue negatives `(N, d)`.

    Returns (loss, logits (B, 1+N) with the positive in column 0).
    """
    positive = (q * k).sum(dim=1, keepdim=True)
    negatives = q @ queue.t()
    logits = torch.cat([positive, negatives], dim=1) / temperature
    target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, target), logits


def shuffled_forward(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, perm: torch.Tensor, splits: int) -> torch.Tensor:
    """Single-device shuffle-BN: run `fn` on `x[perm]` in `splits` chunks, return rows in x's order.

    Each chunk gets its own batch-norm statistics, computed over a random subset of the keys, so
    a query and its key do not share batch statistics (MoCo's cross-GPU shuffle, on one device).
    """
    out = torch.cat([fn(chunk) for chunk in x[perm].chunk(splits)])
    return out[torch.argsort(perm)]


def gather_from_ranks(t: torch.Tensor) -> torch.Tensor:
    """All ranks' keys concatenated under DDP (equal batch sizes per rank); `t` itself otherwise."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


class MoCo(nn.Module):
    """Projection head, momentum key encoder and negative queue for one backbone.

    The query backbone itself stays owned by the caller (PretextModel); pass it to
    `momentum_update`. `forward(query_features, key_clips) -> (loss, metrics, keys)`.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        dim: int = 128,
        hidden_dim: int | None = None,
        queue_size: int = 2048,
        momentum: float = 0.999,
        temperature: float = 0.07,
        bn_splits: int = 2,
        seed: int = 0,
    ):
        super().__init__()
        if queue_size < 1 or not 0.0 <= momentum <= 1.0 or temperature <= 0 or bn_splits < 1:
            raise ValueError(f"bad MoCo settings: queue_size={queue_size}, momentum={momentum}, "
                             f"temperature={temperature}, bn_splits={bn_splits}")
        feature_dim = int(backbone.feature_dim)
        self.momentum, self.temperature, self.bn_splits = float(momentum), float(temperature), int(bn_splits)
        self.projection = ProjectionHead(feature_dim, dim, hidden_dim)
        self.key_backbone = copy.deepcopy(backbone)
        self.key_projection = copy.deepcopy(self.projection)
        for p in self._key_parameters():
            p.requires_grad_(False)
        init = torch.Generator().manual_seed(seed)
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, dim, generator=init), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self._shuffle = torch.Generator().manual_seed(seed + 1)

    def _key_parameters(self):
        yield from self.key_backbone.parameters()
        yield from self.key_projection.parameters()

    @torch.no_grad()
    def sync_key_encoder(self, backbone: nn.Module) -> None:
        """Make the key encoder an exact copy of `backbone` + projection (start of training)."""
        for pk, pq in zip(self.key_backbone.parameters(), backbone.parameters(), strict=True):
            pk.copy_(pq.detach())
        for pk, pq in zip(self.key_projection.parameters(), self.projection.parameters(), strict=True):
            pk.copy_(pq.detach())

    @torch.no_grad()
    def momentum_update(self, backbone: nn.Module) -> None:
        """theta_k <- m * theta_k + (1 - m) * theta_q, for backbone and projection."""
        m = self.momentum
        for pk, pq in zip(self.key_backbone.parameters(), backbone.parameters(), strict=True):
            pk.mul_(m).add_(pq.detach(), alpha=1.0 - m)
        for pk, pq in zip(self.key_projection.parameters(), self.projection.parameters(), strict=True):
            pk.mul_(m).add_(pq.detach(), alpha=1.0 - m)

    @torch.no_grad()
    def encode_keys(self, key_clips: torch.Tensor) -> torch.Tensor:
        """L2-normalised keys `(B, d)`, computed without gradient under shuffle-BN."""
        b = key_clips.shape[0]
        perm = torch.randperm(b, generator=self._shuffle).to(key_clips.device)
        splits = max(1, min(self.bn_splits, b // 2))  # a chunk of one clip has no batch statistics

        def encode(x: torch.Tensor) -> torch.Tensor:
            return self.key_projection(self.key_backbone(x))

        return F.normalize(shuffled_forward(encode, key_clips, perm, splits), dim=1)

    def forward(self, query_features: torch.Tensor, key_clips: torch.Tensor) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
        q = F.normalize(self.projection(query_features), dim=1)
        keys = self.encode_keys(key_clips)
        loss, logits = info_nce(q, keys, self.queue.clone().detach(), self.temperature)
        acc = float((logits.detach().argmax(1) == 0).float().mean())
        return loss, {"ctr_loss": float(loss.detach()), "ctr_acc": acc}, keys.detach()

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write keys (from every DDP rank) into the ring buffer at the pointer, wrapping around."""
        keys = gather_from_ranks(keys.detach())
        size = self.queue.shape[0]
        keys = keys[-size:]  # more keys than slots: only the newest survive anyway
        n = keys.shape[0]
        slots = (int(self.queue_ptr) + torch.arange(n, device=self.queue.device)) % size
        self.queue[slots] = keys.to(self.queue.dtype)
        self.queue_ptr.fill_((int(self.queue_ptr) + n) % size)


@dataclass(frozen=True)
class WithKeyClip:
    """A task whose samples carry a second plan: the MoCo key clip from the same video.

    The key clip has its own random start and its own transform drawn from `key_task` (the
    task itself by default: "same or different from the query", ch. 3.3); its labels are
    dropped. Everything else (heads, loss, labels) is the wrapped task's.
    """

    task: Any
    key_task: Any

    def __post_init__(self) -> None:
        if self.key_task.input_frames != self.task.input_frames:
            raise ValueError(f"key clips have {self.key_task.input_frames} frames but query clips "
                             f"{self.task.input_frames}; they must match to share the input pipeline")

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def heads(self) -> dict[str, int]:
        return self.task.heads

    @property
    def clip_len(self) -> int:
        return self.task.clip_len

    @property
    def extra_frames(self) -> int:
        return self.task.extra_frames

    @property
    def input_frames(self) -> int:
        return self.task.input_frames

    @property
    def min_frames(self) -> int:
        return max(self.task.min_frames, self.key_task.min_frames)

    def key_plan_sample(self, query: Sample, num_frames: int, rng: np.random.Generator) -> Sample:
        """`query` with a freshly drawn key plan appended."""
        key = self.key_task.sample(num_frames, rng)
        return Sample(tuple(query.plans) + (key.plans[0],), dict(query.labels))

    def sample(self, num_frames: int, rng: np.random.Generator) -> Sample:
        if num_frames < self.min_frames:
            raise VideoTooShortError(self.min_frames, num_frames, f"task {self.name} with key clip")
        return self.key_plan_sample(self.task.sample(num_frames, rng), num_frames, rng)

    def label_of(self, params: dict[str, Any]) -> dict[str, int]:
        return self.task.label_of(params)

    def params_of(self, labels: dict[str, int]) -> dict[str, Any]:
        return self.task.params_of(labels)

    def make_heads(self, feature_dim: int) -> nn.Module:
        return self.task.make_heads(feature_dim)

    def loss(self, outputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        return self.task.loss(outputs, labels)


def with_key_clip(task: Any, key_task: Any | None = None) -> WithKeyClip:
    """Wrap `task` so each Sample gets a MoCo key plan (position 1) from the same video."""
    return WithKeyClip(task, task if key_task is None else key_task)
