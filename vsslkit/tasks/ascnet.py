"""ASCNet (seed 004, Algorithm 1): appearance and speed consistency, BYOL-style, without negatives.

Three clips per item (SPECS §3.1-3.2):
- `clip_i` (online) and `clip_j` (target): two clips of the same video at independently drawn
  speeds. ACP: L_a = 2 - 2 cos(h_a(g_a(f(c_i))), g_a'(f'(c_j))), the normalised BYOL distance
  (C2; one-directional as Algorithm 1 writes it, C3), so the appearance features a ignore speed.
- `clip_k` (target): a clip **at c_i's speed** from the most appearance-similar *other* video.
  SCP: L_m likewise with g_m, h_m and the target's g_m', so the speed features m keep speed and
  drop content.
- L = gamma L_m + (1 - gamma) L_a; gamma = 0 is ACP only, gamma = 1 SCP only.

Retrieval (C5-C6). A memory bank holds one L2-normalised target appearance feature per training
video (the last a_j seen from it; random unit vectors until then). Every `refresh_every`
optimiser steps a nearest-neighbour table is recomputed from the bank by dot product, never
the video itself, never a video not yet seen (its entry is noise), and never a video of the same
group with `exclude_same_group` (UCF101's groups, the synthetic set's shared scenes: a
same-group neighbour is a near-duplicate and makes SCP trivial). The data loader reads that
table through a shared-memory tensor (`NeighbourTable`); a row of -1 (before the first refresh)
means "a random other video".

When the loader sees a refresh. DataLoader workers and the prefetch thread load batches ahead of
the step being trained, so a table written in the middle of an epoch would reach some items and
not others depending on timing. The table the loader reads is therefore *published* at the start
of each epoch (`before_epoch`): items of epoch e see the newest table refreshed before e began.
Same seed, same partners, whatever the number of workers; and a run resumed mid-epoch reads the
published table from its checkpoint. The lag is at most one epoch, the same staleness as any
memory-bank method.

Target networks (C7). f', g_a', g_m' start as exact copies and follow the online ones by EMA
(`update_momentum`, momentum `tau`) after every optimiser step; the predictors have no target
copy. Batch-norm policy, "buffers are EMA'd": the target runs in train mode, so each of its
forwards normalises with the batch's statistics (as BYOL does), but its running statistics are
never updated by its own forwards (its batch-norm momentum is 0); they move only by the EMA of
the online network's running statistics, exactly like its weights. A test checks both halves.

DDP: every rank gathers all ranks' (video, a_j) pairs in rank order and writes them in that
order, so the bank, the table and the refresh counter are identical on every rank.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vsslkit.models.heads import MLPHead
from vsslkit.plans import ItemContext, Plan, Sample, VideoTooShortError, constant_plan, constant_span
from vsslkit.tasks.contrastive import gather_from_ranks
from vsslkit.tasks.momentum import update_momentum

TARGET_BUFFERS = "ema"
"""The target's batch-norm buffer policy (see the module docstring)."""


def byol_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ‖p/‖p‖ − z/‖z‖‖² = 2 − 2 cos(p, z); no gradient into `target`."""
    return (2.0 - 2.0 * F.cosine_similarity(prediction, target.detach(), dim=1)).mean()


def spread(x: torch.Tensor) -> float:
    """Collapse monitor: std over the batch of the L2-normalised rows, averaged over dims, × √d.

    About 1 for vectors spread over the sphere, 0 when every row is the same (collapse).
    """
    z = F.normalize(x.detach().float(), dim=1)
    return float(z.std(dim=0).mean() * math.sqrt(z.shape[1])) if z.shape[0] > 1 else float("nan")


def nearest_neighbours(bank: torch.Tensor, seen: torch.Tensor, groups: torch.Tensor | None, *,
                       chunk: int = 1024) -> torch.Tensor:
    """For every video, the seen video with the highest dot product with it, never itself and never
    one of its group (when `groups` is given); -1 where there is no candidate or the video is
    unseen. Computed in row chunks so a 10k-video bank needs no 10k × 10k matrix at once."""
    n = bank.shape[0]
    out = torch.full((n,), -1, dtype=torch.long, device=bank.device)
    cols = torch.arange(n, device=bank.device)
    for start in range(0, n, chunk):
        rows = cols[start:start + chunk]
        sim = bank[rows] @ bank.t()
        banned = ~seen[None, :] | (rows[:, None] == cols[None, :])
        if groups is not None:
            banned |= groups[rows][:, None] == groups[None, :]
        sim = sim.masked_fill(banned, float("-inf"))
        best, arg = sim.max(dim=1)
        out[rows] = torch.where(torch.isfinite(best) & seen[rows], arg, torch.full_like(arg, -1))
    return out


class NeighbourTable:
    """The loader's view of the nearest-neighbour table: a shared-memory tensor, so DataLoader
    workers (forked or persistent) read the rows the training process publishes."""

    def __init__(self) -> None:
        self.table = torch.empty(0, dtype=torch.long)

    def bind(self, num_videos: int) -> None:
        if len(self.table) != num_videos:
            self.table = torch.full((num_videos,), -1, dtype=torch.long).share_memory_()

    def publish(self, values: torch.Tensor) -> None:
        self.bind(len(values))
        self.table.copy_(values.detach().cpu())

    def lookup(self, index: int) -> int:
        return int(self.table[index]) if 0 <= index < len(self.table) else -1


def _freeze_statistics(module: nn.Module) -> None:
    """Batch statistics in train mode, but the running buffers are not updated by forwards."""
    for m in module.modules():
        if hasattr(m, "running_mean") and hasattr(m, "momentum"):
            m.momentum = 0.0


class AscNetModule(nn.Module):
    """Online heads g_a, g_m, h_a, h_m; target encoder f' with g_a', g_m'; the bank and the tables.

    The online encoder f is the caller's backbone (`PretextModel.backbone`), passed to
    `after_optimizer_step`. State that a resumed run needs (bank, seen flags, live and published
    tables, refresh counter) are buffers, so the checkpoint holds them.
    """

    def __init__(self, backbone: nn.Module, *, table: NeighbourTable, hidden: int, dim: int, tau: float,
                 gamma: float, refresh_every: int, exclude_same_group: bool, seed: int):
        super().__init__()
        feature_dim = int(backbone.feature_dim)
        self.table, self.tau, self.gamma = table, float(tau), float(gamma)
        self.refresh_every, self.exclude_same_group, self.seed = int(refresh_every), bool(exclude_same_group), int(seed)
        self.g_a = MLPHead(feature_dim, hidden, dim, batch_norm=True)
        self.g_m = MLPHead(feature_dim, hidden, dim, batch_norm=True)
        self.h_a = MLPHead(dim, hidden, dim, batch_norm=True)
        self.h_m = MLPHead(dim, hidden, dim, batch_norm=True)
        self.target_backbone = copy.deepcopy(backbone)
        self.target_g_a = copy.deepcopy(self.g_a)
        self.target_g_m = copy.deepcopy(self.g_m)
        for target in self.targets():
            for p in target.parameters():
                p.requires_grad_(False)
            _freeze_statistics(target)
        self.dim = int(dim)
        self.register_buffer("bank", torch.empty(0, dim))
        self.register_buffer("seen", torch.empty(0, dtype=torch.bool))
        self.register_buffer("groups", torch.empty(0, dtype=torch.long))
        self.register_buffer("live", torch.empty(0, dtype=torch.long))
        self.register_buffer("published", torch.empty(0, dtype=torch.long))
        self.register_buffer("published_epoch", torch.tensor(-1, dtype=torch.long))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.sync_targets(backbone)

    def targets(self) -> tuple[nn.Module, nn.Module, nn.Module]:
        return self.target_backbone, self.target_g_a, self.target_g_m

    @torch.no_grad()
    def sync_targets(self, backbone: nn.Module) -> None:
        """ξ ← θ, ξ_a ← θ_a, ξ_m ← θ_m (Algorithm 1 line 2), buffers included."""
        for online, target in zip((backbone, self.g_a, self.g_m), self.targets()):
            update_momentum(online, target, 0.0, buffers="copy")

    # --- the training set --------------------------------------------------------------------
    @torch.no_grad()
    def bind_dataset(self, num_videos: int, groups: Sequence[str] | None) -> None:
        """Size the bank for `num_videos` training videos (a no-op when it already fits, e.g. after
        a checkpoint was loaded) and record their groups for `exclude_same_group`."""
        if num_videos < 2:
            raise ValueError(f"ascnet needs at least 2 training videos (a partner from another video), got {num_videos}")
        device = self.bank.device
        if self.bank.shape[0] != num_videos:
            init = torch.Generator().manual_seed(self.seed)
            self.bank = F.normalize(torch.randn(num_videos, self.dim, generator=init), dim=1).to(device)
            self.seen = torch.zeros(num_videos, dtype=torch.bool, device=device)
            self.live = torch.full((num_videos,), -1, dtype=torch.long, device=device)
            self.published = self.live.clone()
            self.published_epoch.fill_(-1)
        if groups is None:
            codes = torch.arange(num_videos)
        else:
            if len(groups) != num_videos:
                raise ValueError(f"{num_videos} videos but {len(groups)} groups")
            names = {g: k for k, g in enumerate(sorted(set(groups)))}
            codes = torch.tensor([names[g] for g in groups], dtype=torch.long)
        self.groups = codes.to(device)
        self.table.publish(self.published)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # torch's signature
        # The bank's size is the training set's: take the checkpoint's size before loading it.
        for name in ("bank", "seen", "groups", "live", "published"):
            stored = state_dict.get(prefix + name)
            if stored is not None and stored.shape != getattr(self, name).shape:
                setattr(self, name, torch.empty_like(stored, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def before_epoch(self, epoch: int) -> None:
        """Publish the live table to the loader once per epoch (see the module docstring)."""
        if self.bank.shape[0] == 0:
            return
        if epoch > int(self.published_epoch):
            self.published.copy_(self.live)
            self.published_epoch.fill_(epoch)
        self.table.publish(self.published)

    # --- a step --------------------------------------------------------------------------------
    def forward(self, features: Any) -> dict[str, torch.Tensor]:
        x_i = features.pooled("clip_i")
        out: dict[str, torch.Tensor] = {}
        a_i, m_i = self.g_a(x_i), self.g_m(x_i)
        out["a"], out["m"] = a_i, m_i
        with torch.no_grad():
            z_a = self.target_g_a(self.target_backbone(features.clip("clip_j")))
        out["z_a"] = z_a
        # Both predictors always run (cheap), so every online parameter is in the graph even when a
        # loss has weight 0 (DDP refuses parameters without gradients); the SCP target runs only if used.
        out["p_a"], out["p_m"] = self.h_a(a_i), self.h_m(m_i)
        if self.gamma > 0.0:
            with torch.no_grad():
                out["z_m"] = self.target_g_m(self.target_backbone(features.clip("clip_k")))
        if self.training:
            self._pending.append((features.extra("video").detach().long().view(-1), F.normalize(z_a.detach(), dim=1)))
        return out

    @torch.no_grad()
    def after_optimizer_step(self, backbone: nn.Module) -> None:
        """EMA of the targets, then the bank writes of this step, then (every R steps) a refresh."""
        for online, target in zip((backbone, self.g_a, self.g_m), self.targets()):
            update_momentum(online, target, self.tau, buffers=TARGET_BUFFERS)
        for videos, keys in self._pending:
            self.write_bank(gather_from_ranks(videos), gather_from_ranks(keys))
        self._pending.clear()
        self.steps += 1
        if self.refresh_every > 0 and int(self.steps) % self.refresh_every == 0:
            self.refresh()

    @torch.no_grad()
    def write_bank(self, videos: torch.Tensor, keys: torch.Tensor) -> None:
        """A[v] ← a_j in the given order (a video twice in one step: the later write wins)."""
        if self.bank.shape[0] == 0:
            raise RuntimeError("the ascnet bank is not sized: call bind_dataset(num_videos, groups) first")
        for v, key in zip(videos.tolist(), keys):
            self.bank[v] = key.to(self.bank.dtype)
            self.seen[v] = True

    @torch.no_grad()
    def refresh(self) -> None:
        """Recompute the live nearest-neighbour table from the bank."""
        self.live.copy_(nearest_neighbours(self.bank, self.seen, self.groups if self.exclude_same_group else None))


@dataclass(frozen=True)
class AscNetTask:
    """ASCNet as a task: samples c_i, c_j, c_k (see the module docstring), builds `AscNetModule`.

    Defaults are the CPU miniature of SPECS §3.4 (heads 256 → 64, tau 0.99, gamma 0.5, R = 50).
    """

    clip_len: int = 16
    speeds: tuple[int, ...] = (1, 2)
    extra_frames: int = 0
    gamma: float = 0.5
    tau: float = 0.99
    hidden: int = 256
    dim: int = 64
    refresh_every: int = 50
    exclude_same_group: bool = True
    acp_same_speed: bool = False
    seed: int = 0
    name: ClassVar[str] = "ascnet"
    momentum_branch: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "speeds", tuple(int(s) for s in self.speeds))
        problems = []
        if self.clip_len < 2:
            problems.append(f"clip_len must be >= 2, got {self.clip_len}")
        if not self.speeds or min(self.speeds) < 1 or len(set(self.speeds)) != len(self.speeds):
            problems.append(f"speeds must be distinct integers >= 1, got {self.speeds}")
        if not 0.0 <= self.gamma <= 1.0:
            problems.append(f"gamma must be in [0, 1], got {self.gamma}")
        if not 0.0 <= self.tau <= 1.0:
            problems.append(f"tau must be in [0, 1], got {self.tau}")
        if self.hidden < 1 or self.dim < 1:
            problems.append(f"head sizes must be >= 1, got hidden={self.hidden}, dim={self.dim}")
        if self.refresh_every < 1:
            problems.append(f"refresh_every must be >= 1, got {self.refresh_every}")
        if problems:
            raise ValueError("; ".join(problems))
        object.__setattr__(self, "_table", NeighbourTable())

    @property
    def table(self) -> NeighbourTable:
        return self._table  # type: ignore[attr-defined]

    @property
    def heads(self) -> dict[str, int]:
        return {}

    @property
    def input_frames(self) -> int:
        return self.clip_len + self.extra_frames

    @property
    def min_frames(self) -> int:
        return constant_span(self.input_frames, max(self.speeds))

    def partner(self, context: ItemContext, rng: np.random.Generator) -> int:
        """The SCP partner video: the published nearest neighbour, else a random other video
        (of another group with `exclude_same_group`, when groups are known and one exists)."""
        n = len(context.num_frames)
        if n < 2:
            raise ValueError("ascnet needs at least 2 videos: the SCP partner comes from another video")
        nn_index = self.table.lookup(context.index)
        if nn_index >= 0 and nn_index != context.index:
            return nn_index
        others = np.array([j for j in range(n) if j != context.index])
        if self.exclude_same_group and context.groups is not None:
            own = context.groups[context.index]
            other_groups = others[[context.groups[j] != own for j in others]]
            if len(other_groups):
                others = other_groups
        return int(others[rng.integers(len(others))])

    def sample(self, num_frames: int, rng: np.random.Generator, *, epoch: int = 0, context: Any = None) -> Sample:
        if context is None:
            raise ValueError("ascnet samples a clip of another video: it needs the dataset's ItemContext")
        if num_frames < self.min_frames:
            raise VideoTooShortError(self.min_frames, num_frames, f"task {self.name}")
        i = int(rng.integers(len(self.speeds)))
        j = i if self.acp_same_speed else int(rng.integers(len(self.speeds)))
        k_video = self.partner(context, rng)
        k_frames = context.num_frames[k_video]
        if k_frames < self.min_frames:
            raise VideoTooShortError(self.min_frames, k_frames, f"task {self.name} (partner video {k_video})")
        clip_i = constant_plan(num_frames, self.input_frames, self.speeds[i], rng)
        clip_j = constant_plan(num_frames, self.input_frames, self.speeds[j], rng)
        k = constant_plan(k_frames, self.input_frames, self.speeds[i], rng)  # same speed as c_i
        clip_k = Plan(k.indices, k.kind, k.params, video=k_video)
        return Sample({"clip_i": clip_i, "clip_j": clip_j, "clip_k": clip_k},
                      {"speed_i": i, "speed_j": j}, {"video": np.float32(context.index)})

    def make_module(self, backbone: nn.Module) -> AscNetModule:
        return AscNetModule(backbone, table=self.table, hidden=self.hidden, dim=self.dim, tau=self.tau,
                            gamma=self.gamma, refresh_every=self.refresh_every,
                            exclude_same_group=self.exclude_same_group, seed=self.seed)

    def loss(self, outputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
             extras: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        metrics = {"spread_a": spread(outputs["a"]), "spread_m": spread(outputs["m"]),
                   "spread_target_a": spread(outputs["z_a"])}
        total = None
        if self.gamma < 1.0:
            loss_a = byol_loss(outputs["p_a"], outputs["z_a"])
            metrics["loss_a"] = float(loss_a.detach())
            total = (1.0 - self.gamma) * loss_a
        if self.gamma > 0.0:
            loss_m = byol_loss(outputs["p_m"], outputs["z_m"])
            metrics["loss_m"] = float(loss_m.detach())
            total = self.gamma * loss_m if total is None else total + self.gamma * loss_m
        assert total is not None
        if self.gamma in (0.0, 1.0):  # the unused predictor joins with weight 0 (see AscNetModule.forward)
            total = total + 0.0 * outputs["p_m" if self.gamma == 0.0 else "p_a"].sum()
        metrics["loss"] = float(total.detach())
        return total, metrics
