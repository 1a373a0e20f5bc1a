"""Playback-speed order prediction (seed 002, PSP) and its one-clip speed baseline (seed 002 T2).

Clips (eqs. 2-3): `l_{+s}` plays m frames at stride s forward from a random start, `l_{-s}` plays
them backwards (indices strictly decreasing by s; eq. 3 as printed lists them increasing, which
would be a forward clip: SPECS §1.2-A1). Every clip of a tuple has its own random start, clips may
overlap, nothing wraps: a video shorter than the widest clip is refused (`VideoTooShortError`),
so the data layer skips and reports it like every other sampler.

Tuples (eq. 1): `L_2 = {l_{+3}, l_{-3}}`; odd n: `{l_{+1}} ∪ {l_{±(2i+1)}, i = 1..(n-1)/2}`;
even n >= 4: `L_{n-1} ∪ {l_{-1}}` (`eq1_speeds`). Any other set of distinct non-zero speeds works.

Order label (the VCOP convention, SPECS §1.1): the canonical order is the speeds sorted
ascending; a uniform random permutation π puts the clip of canonical rank π[p] in slot p, and the
label is the index of π in `itertools.permutations(range(n))` (lexicographic), n! classes.
Worked example: slots showing speeds (+3, −3, +1) → π = (2, 0, 1) → label 4.

Time symmetry (`time_symmetric_ceiling`): on a dataset whose films look the same played backwards
(synthetic v2) a tuple and its mirror (every clip reversed, s → −s) are equally likely, so a set
that equals its own mirror (n = 2, 4, 6) cannot be ordered better than 50 %.

Training: with SGD (lr 0.05 or 0.1, momentum 0.9) the pairwise head stayed at the constant answer for
600-900 steps of n = 2 on synthetic v3, where AdamW 1e-3 reaches 98.8 % held-out; the kit's order
recipe is `experiments.playback_order.ORDER_OPTIMIZER` (docs/results/playback_order.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from vsslkit.models.heads import MultiHead, PairwiseOrderHead
from vsslkit.plans import Plan, Sample, VideoTooShortError, constant_plan, constant_span
from vsslkit.tasks.base import Features, OnPooled, classification_loss, single_clip_sample

MAX_CLIPS = 6  # 6! = 720 classes already; the paper stops there (T5)


# --- speed sets and plans --------------------------------------------------------------------

def eq1_speeds(n: int) -> tuple[int, ...]:
    """The speed set of tuple `L_n` (eq. 1), sorted ascending, for n = 2..6."""
    if not 2 <= n <= MAX_CLIPS:
        raise ValueError(f"eq. 1 defines tuples of 2..{MAX_CLIPS} clips, got {n}")
    if n == 2:
        return (-3, 3)
    if n % 2 == 1:
        speeds = {1} | {sign * (2 * i + 1) for i in range(1, (n - 1) // 2 + 1) for sign in (1, -1)}
    else:
        speeds = set(eq1_speeds(n - 1)) | {-1}
    return tuple(sorted(speeds))


def check_speeds(speeds: Sequence[int], what: str) -> tuple[int, ...]:
    """Distinct non-zero integer speeds, sorted ascending (the canonical order)."""
    out = tuple(sorted(int(s) for s in speeds))
    if not out or any(int(s) != s or s == 0 for s in speeds) or len(set(out)) != len(out):
        raise ValueError(f"{what}: speeds must be distinct non-zero integers, got {tuple(speeds)}")
    return out


def speed_plan(num_frames: int, clip_len: int, speed: int, rng: np.random.Generator) -> Plan:
    """`l_{speed}`: `clip_len` frames at stride |speed|, reversed when speed < 0, own random start.

    The start is uniform over every position where the whole span fits (forward or reversed);
    `params["speed"]` keeps the signed speed so labels and plots can be read off the plan.
    """
    if speed == 0:
        raise ValueError("a playback speed cannot be 0")
    plan = constant_plan(num_frames, clip_len, abs(int(speed)), rng, reverse=speed < 0)
    return Plan(plan.indices, "playback", {"speed": int(speed), **plan.params})


def speed_of_plan(plan: Plan) -> int:
    """The signed speed read off the indices: the common step (an error if the step is not constant)."""
    steps = np.unique(np.diff(plan.indices))
    if len(steps) != 1 or steps[0] == 0:
        raise ValueError(f"not a constant-speed plan: {plan}")
    return int(steps[0])


# --- the order label -------------------------------------------------------------------------

def label_of_permutation(perm: Sequence[int]) -> int:
    """Index of `perm` in `list(itertools.permutations(range(n)))` (lexicographic rank, Lehmer code)."""
    perm = [int(p) for p in perm]
    n = len(perm)
    if sorted(perm) != list(range(n)):
        raise ValueError(f"not a permutation of 0..{n - 1}: {perm}")
    rank = 0
    for i, p in enumerate(perm):
        smaller_later = sum(1 for q in perm[i + 1:] if q < p)
        rank += smaller_later * math.factorial(n - 1 - i)
    return rank


def permutation_of_label(label: int, n: int) -> tuple[int, ...]:
    """The inverse of `label_of_permutation`: the lexicographically `label`-th permutation of range(n)."""
    if not 0 <= int(label) < math.factorial(n):
        raise ValueError(f"order label {label} outside [0, {n}!) = [0, {math.factorial(n)})")
    rest, label, out = list(range(n)), int(label), []
    for i in range(n - 1, -1, -1):
        digit, label = divmod(label, math.factorial(i))
        out.append(rest.pop(digit))
    return tuple(out)


def slot_speeds(label: int, speeds: Sequence[int]) -> tuple[int, ...]:
    """The speeds the slots show for an order label: slot p holds canonical rank π[p]."""
    speeds = tuple(sorted(speeds))
    return tuple(speeds[r] for r in permutation_of_label(label, len(speeds)))


def label_of_slot_speeds(shown: Sequence[int], speeds: Sequence[int] | None = None) -> int:
    """The order label of slots showing `shown` (e.g. (+3, −3, +1) → 4); `speeds` defaults to `shown`'s set."""
    canonical = sorted(shown if speeds is None else speeds)
    if sorted(shown) != canonical:
        raise ValueError(f"slots show {tuple(shown)}, which is not an order of {tuple(canonical)}")
    return label_of_permutation([canonical.index(s) for s in shown])


def format_speed(speed: int) -> str:
    return f"{int(speed):+d}x"


def time_symmetric_ceiling(speeds: Sequence[int], *, clips: int | None = None) -> float:
    """Best possible accuracy when a film and its reversal are equally likely (synthetic v2).

    Order task (`clips` = n > 1): an observation could come from the true permutation or from its
    mirror (every clip reversed: speed s shown as −s). The mirror is a valid tuple of the same set
    only when the set equals its negation; then both are equally likely and the best guess is
    right half the time (n = 2, 4, 6 of eq. 1: 50 %). Otherwise the mirror is impossible and the
    task is solvable (100 %).
    One clip (`clips` = 1, the speed baseline): only |s| is visible; each magnitude is guessed
    right with probability max share of its signs, so the ceiling is (#magnitudes)/(#speeds) for
    uniformly drawn speeds ({−3, +1, +3}: 2/3).
    """
    speeds = check_speeds(speeds, "time_symmetric_ceiling")
    if clips == 1:
        return len({abs(s) for s in speeds}) / len(speeds)
    return 0.5 if tuple(sorted(-s for s in speeds)) == speeds else 1.0


# --- the tasks -------------------------------------------------------------------------------

class OrderModule(nn.Module):
    """Pools every slot's clip (one `together` forward) and runs the pairwise head on them."""

    def __init__(self, head: PairwiseOrderHead, names: tuple[str, ...]):
        super().__init__()
        self.head, self.names = head, names

    def forward(self, features: Features) -> dict[str, torch.Tensor]:
        return {"order": self.head([features.pooled(name) for name in self.names])}


@dataclass(frozen=True)
class PlaybackOrderTask:
    """Head "order" (n! classes): sort n clips played at the speeds of `speeds` (default eq. 1)."""

    clip_len: int = 16
    clips: int = 3
    speeds: tuple[int, ...] | None = None
    extra_frames: int = 0
    hidden: int = 64  # fc7 width: 512 in the paper, 64 in the CPU miniature (SPECS §1.4)
    dropout: float = 0.5
    name: ClassVar[str] = "playback-order"

    def __post_init__(self) -> None:
        if not 2 <= int(self.clips) <= MAX_CLIPS:
            raise ValueError(f"{self.name}: clips must be in 2..{MAX_CLIPS}, got {self.clips}")
        speeds = eq1_speeds(int(self.clips)) if self.speeds is None else check_speeds(self.speeds, self.name)
        if len(speeds) != int(self.clips):
            raise ValueError(f"{self.name}: {self.clips} clips need {self.clips} speeds, got {speeds}")
        if self.clip_len < 2 or self.extra_frames not in (0, 1):
            raise ValueError(f"{self.name}: clip_len must be >= 2 and extra_frames 0 or 1, "
                             f"got {self.clip_len}, {self.extra_frames}")
        object.__setattr__(self, "clips", int(self.clips))
        object.__setattr__(self, "speeds", speeds)

    @property
    def input_frames(self) -> int:
        return self.clip_len + self.extra_frames

    @property
    def heads(self) -> dict[str, int]:
        return {"order": math.factorial(self.clips)}

    @property
    def min_frames(self) -> int:
        return constant_span(self.input_frames, max(abs(s) for s in self.speeds))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"clip{p}" for p in range(self.clips))

    @property
    def together(self) -> tuple[tuple[str, ...], ...]:
        return (self.names,)

    @property
    def moco_key_task(self) -> PlaybackSpeedTask:
        """MoCo's key: one clip of the same video at a speed of this set (its own start)."""
        return PlaybackSpeedTask(clip_len=self.clip_len, speeds=self.speeds, extra_frames=self.extra_frames)

    moco_query: ClassVar[str] = "clip0"

    def sample(self, num_frames: int, rng: np.random.Generator, *, epoch: int = 0, context: Any = None) -> Sample:
        if num_frames < self.min_frames:
            raise VideoTooShortError(self.min_frames, num_frames, f"task {self.name}")
        perm = rng.permutation(self.clips)
        plans = {name: speed_plan(num_frames, self.input_frames, self.speeds[int(perm[p])], rng)
                 for p, name in enumerate(self.names)}
        return Sample(plans, {"order": label_of_permutation(perm)})

    def label_of_plans(self, plans: dict[str, Plan]) -> dict[str, int]:
        """The label read off the plans themselves (their signed steps), slot by slot."""
        return {"order": label_of_slot_speeds([speed_of_plan(plans[n]) for n in self.names], self.speeds)}

    def ceiling(self, head: str, *, time_symmetric: bool) -> float | None:
        """Best possible held-out accuracy on time-symmetric data (`time_symmetric_ceiling`); None otherwise."""
        return time_symmetric_ceiling(self.speeds, clips=self.clips) if time_symmetric else None

    def label_name(self, head: str, index: int) -> str:
        """The speeds the slots show, e.g. "(+3x, -3x, +1x)"."""
        return "(" + ", ".join(format_speed(s) for s in slot_speeds(index, self.speeds)) + ")"

    def make_module(self, backbone: nn.Module) -> nn.Module:
        return OrderModule(PairwiseOrderHead(int(backbone.feature_dim), self.clips, hidden=self.hidden,
                                             dropout=self.dropout), self.names)

    def loss(self, outputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
             extras: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        return classification_loss(outputs, labels, self.heads)


@dataclass(frozen=True)
class PlaybackSpeedTask:
    """Head "speed": one clip at a speed drawn uniformly from `speeds` (T2 baseline: {−3, +1, +3})."""

    clip_len: int = 16
    speeds: tuple[int, ...] = (-3, 1, 3)
    extra_frames: int = 0
    name: ClassVar[str] = "playback-speed"

    def __post_init__(self) -> None:
        object.__setattr__(self, "speeds", check_speeds(self.speeds, self.name))
        if self.clip_len < 2 or self.extra_frames not in (0, 1):
            raise ValueError(f"{self.name}: clip_len must be >= 2 and extra_frames 0 or 1, "
                             f"got {self.clip_len}, {self.extra_frames}")

    @property
    def input_frames(self) -> int:
        return self.clip_len + self.extra_frames

    @property
    def heads(self) -> dict[str, int]:
        return {"speed": len(self.speeds)}

    @property
    def min_frames(self) -> int:
        return constant_span(self.input_frames, max(abs(s) for s in self.speeds))

    def sample_params(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"speed": self.speeds[int(rng.integers(len(self.speeds)))]}

    def plan_for(self, params: dict[str, Any], num_frames: int, rng: np.random.Generator) -> Plan:
        return speed_plan(num_frames, self.input_frames, int(params["speed"]), rng)

    def label_of(self, params: dict[str, Any]) -> dict[str, int]:
        return {"speed": self.speeds.index(int(params["speed"]))}

    def params_of(self, labels: dict[str, int]) -> dict[str, Any]:
        label = int(labels["speed"])
        if not 0 <= label < len(self.speeds):
            raise ValueError(f"{self.name}: speed label {label} outside [0, {len(self.speeds)})")
        return {"speed": self.speeds[label]}

    def sample(self, num_frames: int, rng: np.random.Generator, *, epoch: int = 0, context: Any = None) -> Sample:
        return single_clip_sample(self, num_frames, rng)

    def ceiling(self, head: str, *, time_symmetric: bool) -> float | None:
        """Best possible held-out accuracy on time-symmetric data (only |s| is visible); None otherwise."""
        return time_symmetric_ceiling(self.speeds, clips=1) if time_symmetric else None

    def label_name(self, head: str, index: int) -> str:
        return format_speed(self.params_of({head: index})["speed"])

    def make_module(self, backbone: nn.Module) -> nn.Module:
        return OnPooled(MultiHead(int(backbone.feature_dim), self.heads))

    def loss(self, outputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
             extras: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        return classification_loss(outputs, labels, self.heads)
