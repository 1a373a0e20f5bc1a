"""Curriculum order (seed 003 §3.4): train on the easy half of the videos first, then on all of them.

The pacing function is the paper's single step, g(i) = S_1 + H(i - t) S_2: before the switch epoch
every epoch is a seeded permutation of the easy half S_1 (repeated to a full epoch's length, so the
number of steps per epoch does not change), from the switch epoch on a permutation of every video.
The paper switches "when the model has converged on S_1", which it does not quantify: here the
switch is a configurable fraction of the run (`pretrain(..., curriculum=0.5)` switches half-way).
Seed 003's T3 controls train on one half for the whole run (`PretrainConfig.video_half`, one of
`VIDEO_HALVES`): the same sampler with the chosen half as its "easy" set and no switch.
Being an `EpochSampler`, it resumes at the exact next batch (same seed → same order).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vsslkit.data.clips import EpochSampler

VIDEO_HALVES = ("easy", "hard", "random")


def easy_half(scores: Sequence[float]) -> np.ndarray:
    """Indices of the easier half (largest score first; ties by index), the paper's S_1."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.lexsort((np.arange(len(scores)), -scores))
    return np.sort(order[: max(1, len(scores) // 2)])


class CurriculumSampler(EpochSampler):
    """`EpochSampler` whose epochs before `switch_epoch` draw from `easy` only."""

    def __init__(self, n: int, *, easy: Sequence[int], switch_epoch: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1):
        super().__init__(n, seed=seed, rank=rank, world_size=world_size)
        self.easy = np.asarray(sorted(int(i) for i in easy), dtype=np.int64)
        if len(self.easy) == 0 or self.easy.min() < 0 or self.easy.max() >= n:
            raise ValueError(f"the easy set must be non-empty indices into {n} items")
        self.switch_epoch = int(switch_epoch)

    def indices(self, epoch: int) -> np.ndarray:
        if epoch >= self.switch_epoch:
            return super().indices(epoch)
        rng = np.random.default_rng([self.seed, epoch, 1])  # another stream than the full epochs'
        order = self.easy[rng.permutation(len(self.easy))]
        order = np.resize(order, self.per_rank * self.world_size)
        return order[self.rank :: self.world_size]

    def state_dict(self, consumed: int = 0) -> dict[str, int]:
        return {**super().state_dict(consumed), "switch_epoch": self.switch_epoch}


def switch_epoch(fraction: float, total_steps: int, steps_per_epoch: int) -> int:
    """The first epoch on all videos: the epoch boundary nearest `fraction` of the run."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"the curriculum switch must be a fraction of the run in [0, 1], got {fraction}")
    return round(fraction * total_steps / max(1, steps_per_epoch))
