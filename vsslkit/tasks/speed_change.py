"""Speed change pretext tasks: coarse classification (thesis ch. 3) and fine classification +
localization (ch. 4).

Where the speed changes, in one convention for both tasks and both input kinds: the input clip
has K elements (K frames for RGB; K differences of K+1 frames for residual input); elements
[0, m) are at stride r1 and elements [m, K) at stride r2, so **m is the 0-based index of the
first element of the second part** (thesis c_i[m]; ch. 3 uses m = K/2, "c_i[0:K/2]" and
"c_i[K/2:K]"). For RGB the plan is `speed_change_plan(..., change_at=m)`: the step into frame m
is already r2. For residual input the plan has K+1 frames and `change_at=m+1`, so that the
difference j = frame[j+1] - frame[j] spans r1 frames for j < m and r2 frames for j >= m.

Short videos: `min_frames` is the largest span over every transform the task can draw; a
shorter video is refused by `sample` (VideoTooShortError) and the data layer skips and reports
it. Speeds are never shrunk to fit a short video (that would tie the label to video length).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from vsslkit.models.heads import MultiHead
from vsslkit.plans import (
    Plan,
    Sample,
    constant_plan,
    constant_plan_at,
    constant_span,
    speed_change_plan,
    speed_change_span,
)
from vsslkit.tasks.base import OnPooled, classification_loss, single_clip_sample
from vsslkit.tasks.pace import check_common

PATTERNS = ("constant", "jump-up", "drop-down")


def _plan(params: dict[str, Any], input_frames: int, change_at: int | None, num_frames: int,
          rng: np.random.Generator, start: int | None) -> Plan:
    """Constant plan when r1 == r2 (no change to see), speed change plan otherwise."""
    r1, r2 = int(params["r1"]), int(params["r2"])
    if r1 == r2:
        if start is None:
            return constant_plan(num_frames, input_frames, r1, rng)
        return constant_plan_at(num_frames, input_frames, r1, start)
    assert change_at is not None
    return speed_change_plan(num_frames, input_frames, r1, r2, change_at, rng, start=start)


@dataclass(frozen=True)
class SpeedChangeCoarseTask:
    """Ch. 3: constant speeds, speed jump-up and drop-down by j levels at the clip's middle.

    Label table (head "speed"), defaults speeds=(1, 2, 3, 4), jumps=(1, 2) -> 8 classes:

    | label | pattern   | sub-parameter | (r1, r2) pairs drawn uniformly |
    |-------|-----------|---------------|--------------------------------|
    | 0..3  | constant  | p = 1..4      | (p, p)                         |
    | 4, 5  | jump-up   | j = 1, 2      | j=1: (1,2) (2,3) (3,4); j=2: (1,3) (2,4) |
    | 6, 7  | drop-down | j = 1, 2      | j=1: (2,1) (3,2) (4,3); j=2: (3,1) (4,2) |

    i.e. label = index of p in speeds; len(speeds) + index of j for jump-up; len(speeds) +
    len(jumps) + index of j for drop-down. Sampling (ch. 3.2): the pattern is uniform over
    the three, then p (or j, then an available pair) uniform; so each constant class has
    probability 1/12 and each jump class 1/6 with the defaults. The change is at m = K // 2.
    """

    clip_len: int = 16
    speeds: tuple[int, ...] = (1, 2, 3, 4)
    jumps: tuple[int, ...] = (1, 2)
    extra_frames: int = 0
    name: ClassVar[str] = "speed-change-coarse"

    def __post_init__(self) -> None:
        object.__setattr__(self, "speeds", tuple(int(s) for s in self.speeds))
        object.__setattr__(self, "jumps", tuple(int(j) for j in self.jumps))
        check_common(self.clip_len, self.extra_frames, self.speeds, self.name)
        if not self.jumps or any(j < 1 for j in self.jumps) or list(self.jumps) != sorted(set(self.jumps)):
            raise ValueError(f"{self.name}: jumps must be distinct increasing integers >= 1, got {self.jumps}")
        for j in self.jumps:
            if not self.pairs("jump-up", j):
                raise ValueError(f"{self.name}: no two speeds in {self.speeds} differ by {j}")
        if self.change_at < 2:
            raise ValueError(f"{self.name}: clip_len {self.clip_len} too short for a change at K//2")

    @property
    def input_frames(self) -> int:
        return self.clip_len + self.extra_frames

    @property
    def change_location(self) -> int:
        """m: the first input element of the second part (K // 2)."""
        return self.clip_len // 2

    @property
    def change_at(self) -> int:
        """Plan index of the first frame reached with stride r2 (m, or m + 1 with residual input)."""
        return self.change_location + self.extra_frames

    @property
    def heads(self) -> dict[str, int]:
        return {"speed": len(self.speeds) + 2 * len(self.jumps)}

    @property
    def min_frames(self) -> int:
        return max(self.span_of(t) for t in self.transforms())

    def pairs(self, pattern: str, j: int) -> list[tuple[int, int]]:
        """The (r1, r2) pairs of a jump-up or drop-down class with gap j."""
        sign = {"jump-up": 1, "drop-down": -1}[pattern]
        return [(r, r + sign * j) for r in self.speeds if r + sign * j in self.speeds]

    def transforms(self) -> list[dict[str, Any]]:
        """Every concrete transform (class + (r1, r2)), grouped in label order."""
        out = [{"pattern": "constant", "p": p, "r1": p, "r2": p} for p in self.speeds]
        for pattern in PATTERNS[1:]:
            for j in self.jumps:
                out += [{"pattern": pattern, "j": j, "r1": a, "r2": b} for a, b in self.pairs(pattern, j)]
        return out

    def span_of(self, params: dict[str, Any]) -> int:
        r1, r2 = int(params["r1"]), int(params["r2"])
        if r1 == r2:
            return constant_span(self.input_frames, r1)
        return speed_change_span(self.input_frames, r1, r2, self.change_at)

    def label_of(self, params: dict[str, Any]) -> dict[str, int]:
        pattern = params["pattern"]
        if pattern == "constant":
            p = int(params["p"])
            if p not in self.speeds:
                raise ValueError(f"{self.name}: speed {p} not in {self.speeds}")
            return {"speed": self.speeds.index(p)}
        if pattern not in PATTERNS:
            raise ValueError(f"{self.name}: unknown pattern {pattern!r}, expected one of {PATTERNS}")
        j = int(params["j"])
        if j not in self.jumps:
            raise ValueError(f"{self.name}: jump {j} not in {self.jumps}")
        if "r1" in params and (int(params["r1"]), int(params["r2"])) not in self.pairs(pattern, j):
            raise ValueError(f"{self.name}: ({params['r1']}, {params['r2']}) is not a {pattern} pair with j={j}")
        offset = len(self.speeds) + (0 if pattern == "jump-up" else len(self.jumps))
        return {"speed": offset + self.jumps.index(j)}

    def params_of(self, labels: dict[str, int]) -> dict[str, Any]:
        label, n, nj = int(labels["speed"]), len(self.speeds), len(self.jumps)
        if not 0 <= label < n + 2 * nj:
            raise ValueError(f"{self.name}: speed label {label} outside [0, {n + 2 * nj})")
        if label < n:
            return {"pattern": "constant", "p": self.speeds[label]}
        pattern = "jump-up" if label < n + nj else "drop-down"
        return {"pattern": pattern, "j": self.jumps[(label - n) % nj]}

    def params_for_class(self, label: int, rng: np.random.Generator) -> dict[str, Any]:
        """Concrete params of class `label`, its (r1, r2) pair drawn uniformly."""
        params = self.params_of({"speed": label})
        if params["pattern"] == "constant":
            return {**params, "r1": params["p"], "r2": params["p"]}
        pairs = self.pairs(params["pattern"], params["j"])
        r1, r2 = pairs[int(rng.integers(len(pairs)))]
        return {**params, "r1": r1, "r2": r2}

    def sample_params(self, rng: np.random.Generator) -> dict[str, Any]:
        pattern = PATTERNS[int(rng.integers(3))]
        if pattern == "constant":
            p = self.speeds[int(rng.integers(len(self.speeds)))]
            return {"pattern": pattern, "p": p, "r1": p, "r2": p}
        j = self.jumps[int(rng.integers(len(self.jumps)))]
        return self.params_for_class(self.label_of({"pattern": pattern, "j": j})["speed"], rng)

    def plan_for(self, params: dict[str, Any], num_frames: int, rng: np.random.Generator, *, start: int | None = None) -> Plan:
        return _plan(params, self.input_frames, self.change_at, num_frames, rng, start)

    def sample(self, num_frames: int, rng: np.random.Generator, *, epoch: int = 0, context: Any = None) -> Sample:
        return single_clip_sample(self, num_frames, rng)

    def label_name(self, head: str, index: int) -> str:
        params = self.params_of({head: index})
        return f"p={params['p']}" if params["pattern"] == "constant" else f"{params['pattern']} j={params['j']}"

    def make_module(self, backbone: nn.Module) -> nn.Module:
        return OnPooled(MultiHead(int(backbone.feature_dim), self.heads))

    def loss(self, outputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
             extras: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        return classification_loss(outputs, labels, self.heads)


@dataclass(frozen=True)
class SpeedChangeFineTask:
    """Ch. 4: classify (r1, r2) in pool x pool and localize the change; L = L_loc + L_sc.

    Head "speed": label = i1 * len(pool) + i2 with i = index in `pool` (for pool (1, 2, 3) that is
    (r1-1)*3 + (r2-1): (1,1)=0 (1,2)=1 (1,3)=2 (2,1)=3 (2,2)=4 (2,3)=5 (3,1)=6 (3,2)=7 (3,3)=8).
    Head "loc": label = m - floor(K/3) for a change at m in {floor(K/3), ..., floor(2K/3)}, and the
    dummy label = number of locations (the last class) for constant clips (r1 == r2). K = 16
    gives m in {5, ..., 10}: 6 locations + dummy = 7 classes (the thesis' "between the fifth and
    tenth frames", read as 0-based indices of the first frame of the second part).

    Sampling: "location" (default, the thesis' best) draws the loc label uniformly; dummy ->
    constant clip with r uniform in the pool, a location -> (r1 != r2) uniform; constant clips
    are 1/7 for K = 16. "class" draws (r1, r2) uniformly; r1 == r2 -> dummy, else the location
    is uniform (constant clips 1/len(pool), i.e. 1/3 for pool (1, 2, 3)).
    """

    clip_len: int = 16
    pool: tuple[int, ...] = (1, 2, 3)
    primary: str = "location"
    extra_frames: int = 0
    localize: bool = True  # False: the "fine-grained classification only" ablation (no "loc" head)
    name: ClassVar[str] = "speed-change-fine"

    def __post_init__(self) -> None:
        object.__setattr__(self, "pool", tuple(int(s) for s in self.pool))
        check_common(self.clip_len, self.extra_frames, self.pool, self.name)
        if len(self.pool) < 2:
            raise ValueError(f"{self.name}: the speed pool needs at least two speeds, got {self.pool}")
        if self.primary not in ("location", "class"):
            raise ValueError(f"{self.name}: primary must be 'location' or 'class', got {self.primary!r}")
        if self.locations[0] + self.extra_frames < 2:
            raise ValueError(f"{self.name}: clip_len {self.clip_len} too short: the first part needs >= 2 frames")

    @property
    def input_frames(self) -> int:
        return self.clip_len + self.extra_frames

    @property
    def locations(self) -> tuple[int, ...]:
        """Possible m (first input element of the second part): floor(K/3) .. floor(2K/3)."""
        return tuple(range(self.clip_len // 3, (2 * self.clip_len) // 3 + 1))

    @property
    def dummy_loc(self) -> int:
        return len(self.locations)

    @property
    def heads(self) -> dict[str, int]:
        if not self.localize:  # samples keep their "loc" label; no head reads it
            return {"speed": len(self.pool) ** 2}
        return {"speed": len(self.pool) ** 2, "loc": len(self.locations) + 1}

    @property
    def min_frames(self) -> int:
        return max(self.span_of(t) for t in self.transforms())

    def transforms(self) -> list[dict[str, Any]]:
        """Every concrete (r1, r2, m) the task can draw, m = None for constant clips."""
        out = []
        for r1 in self.pool:
            for r2 in self.pool:
                out += [{"r1": r1, "r2": r2, "m": None}] if r1 == r2 else [{"r1": r1, "r2": r2, "m": m} for m in self.locations]
        return out

    def span_of(self, params: dict[str, Any]) -> int:
        r1, r2 = int(params["r1"]), int(params["r2"])
        if r1 == r2:
            return constant_span(self.input_frames, r1)
        return speed_change_span(self.input_frames, r1, r2, int(params["m"]) + self.extra_frames)

    def label_of(self, params: dict[str, Any]) -> dict[str, int]:
        r1, r2, m = int(params["r1"]), int(params["r2"]), params.get("m")
        if r1 not in self.pool or r2 not in self.pool:
            raise ValueError(f"{self.name}: ({r1}, {r2}) not in pool {self.pool}")
        speed = self.pool.index(r1) * len(self.pool) + self.pool.index(r2)
        if r1 == r2:
            if m is not None:
                raise ValueError(f"{self.name}: a constant clip ({r1}, {r2}) has no change location, got m={m}")
            return {"speed": speed, "loc": self.dummy_loc}
        if m is None or int(m) not in self.locations:
            raise ValueError(f"{self.name}: change location m={m} not in {self.locations}")
        return {"speed": speed, "loc": int(m) - self.locations[0]}

    def params_of(self, labels: dict[str, int]) -> dict[str, Any]:
        speed, loc, n = int(labels["speed"]), int(labels["loc"]), len(self.pool)
        if not 0 <= speed < n * n or not 0 <= loc <= self.dummy_loc:
            raise ValueError(f"{self.name}: labels {labels} outside speed [0, {n * n}) / loc [0, {self.dummy_loc}]")
        r1, r2 = self.pool[speed // n], self.pool[speed % n]
        if (r1 == r2) != (loc == self.dummy_loc):
            raise ValueError(f"{self.name}: labels {labels} are inconsistent: constant clips and only they take the dummy location")
        return {"r1": r1, "r2": r2, "m": None if r1 == r2 else self.locations[loc]}

    def params_for_class(self, label: int, rng: np.random.Generator) -> dict[str, Any]:
        """Concrete params of speed class `label`; a change location is drawn uniformly."""
        n = len(self.pool)
        if not 0 <= label < n * n:
            raise ValueError(f"{self.name}: speed label {label} outside [0, {n * n})")
        r1, r2 = self.pool[label // n], self.pool[label % n]
        m = None if r1 == r2 else self.locations[int(rng.integers(len(self.locations)))]
        return {"r1": r1, "r2": r2, "m": m}

    def sample_params(self, rng: np.random.Generator) -> dict[str, Any]:
        n = len(self.pool)
        if self.primary == "class":
            return self.params_for_class(int(rng.integers(n * n)), rng)
        loc = int(rng.integers(self.dummy_loc + 1))
        if loc == self.dummy_loc:
            r = self.pool[int(rng.integers(n))]
            return {"r1": r, "r2": r, "m": None}
        pair = int(rng.integers(n * (n - 1)))  # the off-diagonal pairs, in label order
        i1, k = divmod(pair, n - 1)
        i2 = k if k < i1 else k + 1
        return {"r1": self.pool[i1], "r2": self.pool[i2], "m": self.locations[loc]}

    def plan_for(self, params: dict[str, Any], num_frames: int, rng: np.random.Generator, *, start: int | None = None) -> Plan:
        m = params.get("m")
        change_at = None if m is None else int(m) + self.extra_frames
        return _plan(params, self.input_frames, change_at, num_frames, rng, start)

    def sample(self, num_frames: int, rng: np.random.Generator, *, epoch: int = 0, context: Any = None) -> Sample:
        return single_clip_sample(self, num_frames, rng)

    def label_name(self, head: str, index: int) -> str:
        """ "(r1,r2)" for the speed head; "m=5" or "constant" (the dummy) for the loc head."""
        if head == "loc":
            if not 0 <= index <= self.dummy_loc:
                raise ValueError(f"{self.name}: loc label {index} outside [0, {self.dummy_loc}]")
            return "constant" if index == self.dummy_loc else f"m={self.locations[index]}"
        n = len(self.pool)
        if head != "speed" or not 0 <= index < n * n:
            raise ValueError(f"{self.name}: no class {index} of head {head!r}")
        return f"({self.pool[index // n]},{self.pool[index % n]})"

    def make_module(self, backbone: nn.Module) -> nn.Module:
        return OnPooled(MultiHead(int(backbone.feature_dim), self.heads))

    def loss(self, outputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
             extras: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        return classification_loss(outputs, labels, self.heads)  # L = L_loc + L_sc, both weight 1 (ch. 4.4.3)
