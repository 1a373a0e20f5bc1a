"""MoCo-v2 same-context contrastive branch (thesis ch. 3.3-3.4), composable with any task.

Query = another branch's clip (by name, e.g. "pretext.clip") through the trained backbone + a
2-layer MLP projection (128-d); key = a further clip of the same video (its own start and speed
transform, drawn by `key_task`) through a momentum copy of backbone + projection. Negatives are a
fixed-size ring buffer of past keys (2048 in the thesis), kept as registered buffers so
checkpoints hold them. InfoNCE with temperature 0.07 (eq. 3.2, dot product of L2-normalised
vectors).

Order of operations: loss with the current queue -> backward -> optimiser step ->
`after_optimizer_step` (EMA of the key encoder, then enqueue): an in-place queue write before
backward breaks autograd.

    task = Joint({"pretext": SpeedChangeFineTask(), "moco": MoCo(key_task=SpeedChangeFineTask())},
                 weights={"pretext": 1.0, "moco": 0.5})
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from vsslkit.models.heads import MLPHead
from vsslkit.plans import Sample, VideoTooShortError
from vsslkit.tasks.momentum import copy_weights, update_momentum


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


class MoCoModule(nn.Module):
    """Projection head, momentum key encoder and negative queue for one backbone.

    The query backbone stays owned by the caller (`PretextModel`), which passes it to
    `after_optimizer_step`. The shuffle-BN permutation generator's state is a buffer, so a
    resumed run draws the same permutations as an uninterrupted one.
    """

    def __init__(self, backbone: nn.Module, *, query: str, key: str, dim: int, hidden_dim: int | None,
                 queue_size: int, momentum: float, temperature: float, bn_splits: int, seed: int):
        super().__init__()
        feature_dim = int(backbone.feature_dim)
        self.query, self.key = query, key
        self.momentum, self.temperature, self.bn_splits = float(momentum), float(temperature), int(bn_splits)
        self.projection = MLPHead(feature_dim, hidden_dim or feature_dim, dim)
        self.key_backbone = copy.deepcopy(backbone)
        self.key_projection = copy.deepcopy(self.projection)
        for p in (*self.key_backbone.parameters(), *self.key_projection.parameters()):
            p.requires_grad_(False)
        init = torch.Generator().manual_seed(seed)
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, dim, generator=init), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("shuffle_state", torch.Generator().manual_seed(seed + 1).get_state())
        self._pending_keys: list[torch.Tensor] = []
        self.sync_key_encoder(backbone)  # the key encoder starts as an exact copy

    @torch.no_grad()
    def sync_key_encoder(self, backbone: nn.Module) -> None:
        """Make the key encoder an exact copy of `backbone` + projection."""
        copy_weights(backbone, self.key_backbone)
        copy_weights(self.projection, self.key_projection)

    def _permutation(self, b: int) -> torch.Tensor:
        generator = torch.Generator()
        generator.set_state(self.shuffle_state.cpu())
        perm = torch.randperm(b, generator=generator)
        self.shuffle_state.copy_(generator.get_state())
        return perm

    @torch.no_grad()
    def encode_keys(self, key_clips: torch.Tensor) -> torch.Tensor:
        """L2-normalised keys `(B, d)`, computed without gradient under shuffle-BN."""
        b = key_clips.shape[0]
        perm = self._permutation(b).to(key_clips.device)
        splits = max(1, min(self.bn_splits, b // 2))  # a chunk of one clip has no batch statistics

        def encode(x: torch.Tensor) -> torch.Tensor:
            return self.key_projection(self.key_backbone(x))

        return F.normalize(shuffled_forward(encode, key_clips, perm, splits), dim=1)

    def forward(self, features: Any) -> dict[str, torch.Tensor]:
        q = F.normalize(self.projection(features.pooled(self.query)), dim=1)
        keys = self.encode_keys(features.clip(self.key))
        positive = (q * keys).sum(dim=1, keepdim=True)
        logits = torch.cat([positive, q @ self.queue.clone().detach().t()], dim=1) / self.temperature
        if self.training:
            self._pending_keys.append(keys.detach())
        return {"logits": logits}

    @torch.no_grad()
    def after_optimizer_step(self, backbone: nn.Module) -> None:
        """EMA-update the key encoder from the freshly stepped backbone, then enqueue the keys."""
        update_momentum(backbone, self.key_backbone, self.momentum)
        update_momentum(self.projection, self.key_projection, self.momentum)
        for keys in self._pending_keys:
            self.enqueue(keys)
        self._pending_keys.clear()

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
class MoCo:
    """The MoCo branch as a task: samples the key clip, builds `MoCoModule`, scores InfoNCE.

    `key_task` draws the key clip's plan ("same or different from the query", ch. 3.3: by default
    the query's own task, so the key has its own random start and speed transform). `query` names
    the clip whose pooled features are the query — another branch's clip inside a `Joint`.
    """

    key_task: Any
    query: str = "pretext.clip"
    dim: int = 128
    hidden_dim: int | None = None
    queue_size: int = 2048
    momentum: float = 0.999
    temperature: float = 0.07
    bn_splits: int = 2
    seed: int = 0
    name: ClassVar[str] = "moco"
    momentum_branch: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.queue_size < 1 or not 0.0 <= self.momentum <= 1.0 or self.temperature <= 0 or self.bn_splits < 1:
            raise ValueError(f"bad MoCo settings: queue_size={self.queue_size}, momentum={self.momentum}, "
                             f"temperature={self.temperature}, bn_splits={self.bn_splits}")

    @property
    def heads(self) -> dict[str, int]:
        return {}

    @property
    def input_frames(self) -> int:
        return self.key_task.input_frames

    @property
    def min_frames(self) -> int:
        return self.key_task.min_frames

    def sample(self, num_frames: int, rng: np.random.Generator, *, epoch: int = 0, context: Any = None) -> Sample:
        if num_frames < self.min_frames:
            raise VideoTooShortError(self.min_frames, num_frames, "MoCo key clip")
        return Sample({"key": self.key_task.sample(num_frames, rng, epoch=epoch, context=context).plan})

    def make_module(self, backbone: nn.Module) -> MoCoModule:
        return MoCoModule(backbone, query=self.query, key="key", dim=self.dim, hidden_dim=self.hidden_dim,
                          queue_size=self.queue_size, momentum=self.momentum, temperature=self.temperature,
                          bn_splits=self.bn_splits, seed=self.seed)

    def loss(self, outputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
             extras: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        logits = outputs["logits"]
        target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        loss = F.cross_entropy(logits, target)
        acc = float((logits.detach().argmax(1) == 0).float().mean())
        return loss, {"loss": float(loss.detach()), "acc": acc}
