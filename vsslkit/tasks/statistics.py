"""Spatio-temporal statistics (seed 003): predict where the motion is, which way its boundaries point,
and where the colour changes, from one clip.

One stride-1 clip of `clip_len` frames per sample. Its 27 labels (14 motion, 13 appearance; see
`vsslkit.tasks.statistics_labels`) are not drawn by the sampler: they are computed in
`pixel_labels` from the clip *after* augmentation and from its optical flow, which reaches the task
like this (docs/architecture.md, "Flow-derived labels"):
  `FlowCache` (computed once, beside the frame store) → `ClipDataset(flow=..., flow_clips=("pretext.clip",))`
  reads the flows of the clip's consecutive frames → `collate` stacks them → `prepare_batch` crops,
  resamples and flips them with the clip's own window (u negated on a flip) into
  `augment["clip"]["flow"]` → `pixel_labels` here.
A task says which of its plans need flow with `flow_clips`.

Targets (`targets=`): "classification" (27 linear heads, L = λ_m Σ CE_motion + λ_a Σ CE_appearance,
λ_m = 1, λ_a = 0.1, eq. 9), "1d" (two linear heads regressing the 1-based labels as numbers, MSE,
eq. 8 as the reference code computes it) or "2d" (P1 and P3 locations as 2-vectors). Every target
logs the paper's pretext accuracy: exact match per label (regression rounded), mean over labels.
`groups` selects label groups for the ablations (T1): "m1" "m2" "m3" (motion per pattern), "mg"
(global motion), "a1" "a2" "a3", "ag" (global colour).

Residual input (`extra_frames=1`, `--residual`) is allowed for motion-only groups: the plan reads
`clip_len + 1` frames, the network sees their `clip_len` differences, and the motion labels come
from the `clip_len` flows between those frames (so the global largest-motion frame has `clip_len`
classes). Appearance labels need the clip's RGB pixels, so they refuse it. Why it exists: on the
synthetic set a slim 3D CNN's motion accuracy stayed flat from RGB and rose from differences
(docs/results/statistics.md, "Frame differences").

`head=` says what the heads read: "pooled" (default) is the backbone's global average, which throws
away *where* things are, so the block-location labels (every `p*` label, and the orientations of
the chosen block) can only be guessed; "grid" is the paper's layout-keeping head (C3D's fc layers
read the flattened pool5 map): the last stage's map averaged over time and pooled to a 4 x 4 grid
(pattern 1's blocks), flattened, then the same linear heads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vsslkit.data.transforms import MEAN, STD
from vsslkit.models.heads import MultiHead
from vsslkit.plans import IGNORE_INDEX, Sample, VideoTooShortError, constant_plan
from vsslkit.tasks.base import OnPooled, classification_loss
from vsslkit.tasks.statistics_labels import (
    APPEARANCE_LABELS,
    LABELS,
    MOTION_LABELS,
    clip_labels,
    decode_regression,
    num_classes,
    regression_targets,
    regression_width,
)

TARGETS = ("classification", "1d", "2d")
HEADS = ("pooled", "grid")
GRID = 4  # cells per side of the "grid" head's map: pattern 1's 4 x 4 blocks
GROUPS = ("m1", "m2", "m3", "mg", "a1", "a2", "a3", "ag")


def _group(label: str) -> str:
    return label[:2] if label[1].isdigit() else label[0] + "g"


def to_uint8_frames(clips: torch.Tensor) -> np.ndarray:
    """Normalised float clips `(B, 3, T, H, W)` back to the uint8 `(B, T, H, W, 3)` pixels they were
    made from (the augmentation rounds to uint8 before normalising, so this is exact)."""
    mean = torch.tensor(MEAN, device=clips.device).view(1, 3, 1, 1, 1)
    std = torch.tensor(STD, device=clips.device).view(1, 3, 1, 1, 1)
    x = (clips.detach().float() * std + mean).mul_(255).round_().clamp_(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 4, 1).cpu().numpy()


@dataclass(frozen=True)
class StatisticsTask:
    """27 labels of one clip from its pixels and flow; see the module docstring."""

    clip_len: int = 8
    targets: str = "classification"
    groups: tuple[str, ...] = GROUPS
    motion_weight: float = 1.0  # lambda_m
    appearance_weight: float = 0.1  # lambda_a
    hist_bins: int = 32  # 32 at 56 px (SPECS B6); the reference uses 256 at 112
    soft_orientation: bool = False
    extra_frames: int = 0
    head: str = "pooled"
    flow_sigma: float = 0.0  # > 0: blur each flow before the motion labels (statistics_labels.smooth_flow)
    name: ClassVar[str] = "statistics"
    flow_clips: ClassVar[tuple[str, ...]] = ("clip",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))
        if self.targets not in TARGETS:
            raise ValueError(f"targets must be one of {', '.join(TARGETS)}, got {self.targets!r}")
        bad = [g for g in self.groups if g not in GROUPS]
        if bad or not self.groups:
            raise ValueError(f"groups must be a non-empty subset of {', '.join(GROUPS)}, got {list(self.groups)}")
        if self.flow_sigma < 0:
            raise ValueError(f"flow_sigma must be >= 0, got {self.flow_sigma}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.clip_len < 3:
            raise ValueError(f"statistics needs clips of at least 3 frames (2 flows), got {self.clip_len}")
        if self.extra_frames not in (0, 1):
            raise ValueError(f"extra_frames must be 0 or 1 (residual input), got {self.extra_frames}")
        if self.extra_frames and self._wants_appearance:
            raise ValueError("appearance labels need the clip's own RGB frames: residual input works with motion "
                             "groups only (groups m1 m2 m3 mg; --stat-groups on the command line)")
        if self.targets != "classification" and self.groups != GROUPS:
            raise ValueError("label groups can be chosen with targets='classification' only")

    @property
    def _wants_motion(self) -> bool:
        return any(g.startswith("m") for g in self.groups)

    @property
    def _wants_appearance(self) -> bool:
        return any(g.startswith("a") for g in self.groups)

    @property
    def input_frames(self) -> int:
        """Frames a plan reads: the clip, plus one when the network sees differences."""
        return self.clip_len + self.extra_frames

    @property
    def min_frames(self) -> int:
        return self.input_frames

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels this task predicts (all 27 unless `groups` selects some), in label order."""
        return tuple(name for name in LABELS if _group(name) in self.groups)

    @property
    def heads(self) -> dict[str, int]:
        if self.targets != "classification":
            return {}
        n = num_classes(self.input_frames)  # the labels are computed on the frames read
        return {name: n[name] for name in self.labels}

    def sample(self, num_frames: int, rng: np.random.Generator, *, epoch: int = 0, context: Any = None) -> Sample:
        if num_frames < self.min_frames:
            raise VideoTooShortError(self.min_frames, num_frames, f"task {self.name}")
        return Sample({"clip": constant_plan(num_frames, self.input_frames, 1, rng)})

    def compute_labels(self, frames: np.ndarray | None, flow: np.ndarray) -> dict[str, np.ndarray]:
        """The 27 labels of uint8 `(B, N, S, S, 3)` frames and their `(B, N-1, S, S, 2)` flow
        (`frames` may be None when no appearance group is selected)."""
        return clip_labels(frames, flow, hist_bins=self.hist_bins, soft_orientation=self.soft_orientation,
                           motion=self._wants_motion, appearance=self._wants_appearance, flow_sigma=self.flow_sigma)

    def pixel_labels(self, clips: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
                     augment: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Labels from the augmented clip and its augmented flow (`augment["clip"]["flow"]`)."""
        if "flow" not in augment.get("clip", {}):
            raise ValueError("statistics labels need the clip's optical flow (augment['clip']['flow']); "
                             "build the ClipDataset with flow=FlowCache(...) and flow_clips=task.flow_clips")
        # pixels for the appearance labels only (with residual input the clip holds differences)
        frames = to_uint8_frames(clips["clip"]) if self._wants_appearance else None
        flow = augment["clip"]["flow"].detach().float().cpu().numpy()
        device = clips["clip"].device
        out = dict(labels)
        for name, value in self.compute_labels(frames, flow).items():
            if name in self.labels:
                out[name] = torch.from_numpy(value).to(device)
        return out

    def make_module(self, backbone: nn.Module) -> nn.Module:
        dim = int(backbone.feature_dim)
        if self.head == "grid":
            dim *= GRID * GRID
        if self.targets == "classification":
            inner: nn.Module = MultiHead(dim, self.heads)
        else:
            motion, appearance = regression_width(self.targets == "2d")
            inner = _Regression(dim, motion, appearance)
        return OnGrid(inner) if self.head == "grid" else OnPooled(inner)

    def loss(self, outputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
             extras: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        if self.targets == "classification":
            weights = {n: self.motion_weight if n in MOTION_LABELS else self.appearance_weight for n in self.heads}
            total, metrics = classification_loss(outputs, labels, self.heads, weights)
            predicted = {n: outputs[n].detach().argmax(1) for n in self.heads}
        else:
            two_d = self.targets == "2d"
            truth = {n: labels[n].detach().cpu().numpy() for n in LABELS}
            motion_t, app_t = (torch.from_numpy(t).to(outputs["motion"].device) for t in regression_targets(truth, two_d=two_d))
            total = None
            metrics = {}
            for key, target, weight in (("motion", motion_t, self.motion_weight), ("appearance", app_t, self.appearance_weight)):
                keep = ~torch.isnan(target)
                part = F.mse_loss(outputs[key][keep], target[keep]) if keep.any() else outputs[key].sum() * 0.0
                metrics[f"{key}_loss"] = float(part.detach())
                total = weight * part if total is None else total + weight * part
            metrics["loss"] = float(total.detach())
            decoded = decode_regression(outputs["motion"].detach().float().cpu().numpy(),
                                        outputs["appearance"].detach().float().cpu().numpy(),
                                        two_d=two_d, clip_len=self.clip_len)
            predicted = {n: torch.from_numpy(decoded[n]) for n in LABELS}
            for n in LABELS:
                target = labels[n].detach().cpu()
                keep = target != IGNORE_INDEX
                metrics[f"{n}_acc"] = float((predicted[n][keep] == target[keep]).float().mean()) if keep.any() else float("nan")
        metrics.update(pretext_accuracy(metrics, self.labels))
        return total, metrics

    def label_name(self, head: str, index: int) -> str:
        return f"{head}={index}"


def pretext_accuracy(metrics: dict[str, float], names: tuple[str, ...]) -> dict[str, float]:
    """The paper's pretext accuracy: mean over labels of the exact-match accuracy, and per group."""
    out = {}
    for key, group in (("acc", names), ("motion_acc", [n for n in names if n in MOTION_LABELS]),
                       ("appearance_acc", [n for n in names if n in APPEARANCE_LABELS])):
        values = [metrics[f"{n}_acc"] for n in group if not np.isnan(metrics.get(f"{n}_acc", np.nan))]
        if values:
            out[key] = float(np.mean(values))
    return out


class OnGrid(nn.Module):
    """Runs a head on the last stage's map of clip "clip", time-averaged and pooled to a GRID x GRID
    grid, flattened channel-major: `(B, C * GRID * GRID)`; the layout survives, unlike `OnPooled`."""

    def __init__(self, head: nn.Module, clip: str = "clip"):
        super().__init__()
        self.head, self.clip = head, clip

    def forward(self, features: Any) -> dict[str, torch.Tensor]:
        x = features.maps(self.clip, "pre_pool").mean(dim=2)  # (B, C, H', W')
        x = F.adaptive_avg_pool2d(x, GRID)
        return self.head(x.flatten(1))


class _Regression(nn.Module):
    """Two linear heads: motion and appearance label values (the reference's 512→14 and 512→13)."""

    def __init__(self, dim: int, motion: int, appearance: int):
        super().__init__()
        self.motion, self.appearance = nn.Linear(dim, motion), nn.Linear(dim, appearance)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"motion": self.motion(x), "appearance": self.appearance(x)}


def video_difficulty(flow: Any, paths: list, num_frames: list[int], *, clip_len: int, size: int,
                     clips: int = 4) -> np.ndarray:
    """Curriculum score f (eq. 6) per video: the mean over `clips` uniformly spaced centre-cropped
    clips (SPECS §2.1: one sample per video in the paper; UCF-style data gets several clips)."""
    from vsslkit.data.transforms import crop_flip_flow
    from vsslkit.plans import uniform_plans
    from vsslkit.tasks.statistics_labels import difficulty

    scores = np.zeros(len(paths))
    for i, (path, n) in enumerate(zip(paths, num_frames)):
        plans = uniform_plans(int(n), clip_len, 1, clips)
        stack = torch.stack([torch.from_numpy(flow.read(path, p.indices)) for p in plans])
        scores[i] = float(difficulty(crop_flip_flow(stack, None, size).numpy()).mean())
    return scores
