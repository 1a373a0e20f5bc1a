"""Cycle-consistency tracking (seed 001 §3.4; X. Wang et al. 2019 "TimeCycle") as a task branch.

One plan per sample: k + 1 frames at a constant gap (the seed: clip frames 0, 4, 8 and the
target 12, i.e. k = 3, gap 4). The last frame is the target. A patch of the target where there
is motion (the largest |frame difference| to the previous sampled frame, one of the `top`
windows, jittered), rotated by α ∈ [-45°, 45°] at the fixed scale 1/3, gives the ground-truth
affine θ_GT. The patch feature is tracked back through the past frames and forward again to
the target (cycles of length 1..k, plus the skip cycle), and the loss is the thesis' eq. 3.3:
Σ_i [l_sim^i + λ l_long^i] + λ l_skip, λ = 0.1 (`vsslkit.models.cycle`).

Why the patch is placed in the module, not in `sample`: "where there is motion" depends on the
pixels after cropping and flipping, which a sampler never sees. The sampler only draws four
uniform numbers per sample (extra "draw": which of the top windows, the jitter in x and y, the
angle), so the same seed still gives the same patches. Why the patch feature is cut from the
target's feature map (bilinearly, at θ_GT) rather than by running the trunk on a cropped patch
image as the public code does: one trunk pass per clip instead of two, which matters on a CPU;
the cycle, the localiser and the losses are unchanged.

Reference conventions that differ (SPECS §4.3-4): the public code's loss is λ·GridLoss over
cycles + an inlier count + λ·GridLoss(skip); this module implements the thesis' text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vsslkit.models.cycle import CycleResult, Localiser, SoftArgmaxLocaliser, affine_theta, cycle_loss, cycles
from vsslkit.plans import Sample, VideoTooShortError, constant_plan, constant_span


def motion_patch_theta(clip: torch.Tensor, draws: torch.Tensor, *, scale: float, top: int = 10,
                       jitter: float = 1 / 12, max_rotation: float = 45.0) -> torch.Tensor:
    """θ_GT `(B, 2, 3)` of a patch of the clip's last frame where it differs most from the frame
    before: windows of the patch's side, scored by mean |difference|; `draws[:, 0]` picks one of
    the `top` best, `draws[:, 1:3]` jitter it by up to ±`jitter` of the frame, `draws[:, 3]` sets
    α ∈ [-max_rotation, max_rotation] degrees. The centre is kept where the unrotated patch fits."""
    _b, _, _, h, w = clip.shape
    diff = (clip[:, :, -1] - clip[:, :, -2]).abs().mean(1, keepdim=True)
    side = max(1, round(scale * min(h, w)))
    stride = max(1, side // 3)
    scores = F.avg_pool2d(diff, side, stride).flatten(1)  # (B, nh*nw)
    nw = (w - side) // stride + 1
    count = min(top, scores.shape[1])
    best = scores.topk(count, dim=1).indices  # (B, count)
    pick = best.gather(1, (draws[:, :1] * count).long().clamp(max=count - 1)).squeeze(1)
    row, col = pick // nw, pick % nw
    cx = (col * stride + side / 2).float() / w * 2 - 1
    cy = (row * stride + side / 2).float() / h * 2 - 1
    limit = 1 - scale
    tx = (cx + (draws[:, 1] * 2 - 1) * 2 * jitter).clamp(-limit, limit)
    ty = (cy + (draws[:, 2] * 2 - 1) * 2 * jitter).clamp(-limit, limit)
    alpha = (draws[:, 3] * 2 - 1) * math.radians(max_rotation)
    return affine_theta(tx, ty, alpha, scale)


def probe_map_shape(backbone: nn.Module, layer: str, frames: int, size: int) -> tuple[int, int, int]:
    """(channels, height, width) of `layer` for `size`x`size` input (one tiny forward, no state
    change: the backbone is run in eval mode without gradients and put back). Raises ValueError
    when the layer has fewer time steps than `frames`: the cycle needs one map per frame."""
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            out = backbone.features(torch.zeros(1, 3, frames, size, size), layers=(layer,))[layer]
    finally:
        backbone.train(was_training)
    if out.shape[2] != frames:
        raise ValueError(f"tracking: layer {layer} of this backbone has {out.shape[2]} time steps for {frames} "
                         "frames; the cycle needs a layer that keeps time (layer='auto' picks the deepest one)")
    return int(out.shape[1]), int(out.shape[-2]), int(out.shape[-1])


# Layers a backbone may expose, deepest first: what layer="auto" tries.
_AUTO_LAYERS = ("pool4", "pool3", "pool2", "conv1")


def deepest_time_keeping_layer(backbone: nn.Module, frames: int, size: int) -> str:
    """The deepest feature layer whose maps keep all `frames` time steps: "pool4" on seed 001's
    inflated ResNet-50 (no temporal stride), "pool2" on R3D-10 (layer2 strides time)."""
    for layer in _AUTO_LAYERS:
        try:
            probe_map_shape(backbone, layer, frames, size)
        except (ValueError, KeyError):
            continue
        return layer
    raise ValueError(f"tracking: no layer of {type(backbone).__name__} keeps {frames} time steps")


class TimeCycleModule(nn.Module):
    """Projection (1x1x1 conv, no bias) → ReLU → L2 norm over channels; the localiser; the cycles."""

    def __init__(self, channels: int, height: int, width: int, *, proj_dim: int, scale: float, layer: str,
                 top: int, jitter: float, max_rotation: float, localiser: str = "learned"):
        super().__init__()
        self.patch_size = max(1, round(min(height, width) * scale))
        self.project = nn.Conv3d(channels, proj_dim, kernel_size=1, bias=False)
        if localiser == "learned":
            self.localiser: nn.Module = Localiser(height * width, self.patch_size, scale)
        elif localiser == "soft-argmax":
            self.localiser = SoftArgmaxLocaliser(height, width, scale)
        else:
            raise ValueError(f"localiser must be 'learned' or 'soft-argmax', got {localiser!r}")
        self.temperature = proj_dim ** -0.5  # logits x sqrt(d), as the seed's T = 512^-1/2
        self.scale, self.layer, self.top, self.jitter, self.max_rotation = scale, layer, top, jitter, max_rotation

    def embed(self, maps: torch.Tensor) -> torch.Tensor:
        """`(B, C, T, h, w)` trunk maps -> L2-normalised projected maps `(B, d, T, h, w)`."""
        return F.normalize(F.relu(self.project(maps)), dim=1)

    def forward(self, features: Any) -> dict[str, torch.Tensor]:
        clip = features.clip("clip")
        with torch.no_grad():
            theta_gt = motion_patch_theta(clip, features.extra("draw"), scale=self.scale, top=self.top,
                                          jitter=self.jitter, max_rotation=self.max_rotation)
        phi = self.embed(features.maps("clip", self.layer))
        frames = [phi[:, :, t] for t in range(phi.shape[2])]
        result = cycles(frames, theta_gt, self.localiser, temperature=self.temperature, patch_size=self.patch_size)
        return {"theta_gt": theta_gt, "long_thetas": torch.stack(result.long_thetas, 1),
                "skip_theta": result.skip_theta, "patch": result.patch,
                "back_patches": torch.stack(result.back_patches, 1), "back_thetas": torch.stack(result.back_thetas, 1)}


@dataclass(frozen=True)
class TimeCycleTask:
    """k = `past` frames before the target at a constant `gap`; tracking on the maps of `layer`
    for `size`x`size` crops (the localiser's input has one channel per map location).

    `layer="auto"`: the deepest layer that keeps time (`deepest_time_keeping_layer`), so the task
    runs on any backbone of the kit (`vsslkit pretrain --task tracking`). `extra_frames=1`: the
    plan reads one frame more at the same gap and the network sees the k + 1 differences
    (residual input, as every other pretext task of the kit can). `clip_len` is accepted for the
    common task signature and not used: the cycle's frames are k + 1, not a clip."""

    past: int = 3
    gap: int = 4
    layer: str = "pool4"
    size: int = 64
    proj_dim: int = 64
    scale: float = 1 / 3
    top: int = 10
    jitter: float = 1 / 12
    max_rotation: float = 45.0
    weight: float = 0.1  # λ of eq. 3.3
    sim_weight: float = 1.0  # l_sim's factor (1: the thesis; see models.cycle.cycle_loss)
    localiser: str = "learned"  # the thesis' conv + FC localiser, or "soft-argmax" (models.cycle.SoftArgmaxLocaliser)
    extra_frames: int = 0
    clip_len: int | None = None
    name: ClassVar[str] = "timecycle"

    def __post_init__(self) -> None:
        if self.past < 1 or self.gap < 1:
            raise ValueError(f"{self.name}: past and gap must be >= 1, got {self.past}, {self.gap}")
        if not 0 < self.scale < 1:
            raise ValueError(f"{self.name}: scale must be in (0, 1), got {self.scale}")
        if self.localiser not in ("learned", "soft-argmax"):
            raise ValueError(f"{self.name}: localiser must be 'learned' or 'soft-argmax', got {self.localiser!r}")
        if self.extra_frames not in (0, 1):
            raise ValueError(f"{self.name}: extra_frames must be 0 or 1 (residual input), got {self.extra_frames}")

    @property
    def heads(self) -> dict[str, int]:
        return {}

    @property
    def input_frames(self) -> int:
        return self.past + 1 + self.extra_frames

    @property
    def network_frames(self) -> int:
        """Frames the network sees: k + 1 (differences of the k + 2 read when `extra_frames` is 1)."""
        return self.past + 1

    @property
    def min_frames(self) -> int:
        return constant_span(self.input_frames, self.gap)

    def sample(self, num_frames: int, rng: np.random.Generator, *, epoch: int = 0, context: Any = None) -> Sample:
        if num_frames < self.min_frames:
            raise VideoTooShortError(self.min_frames, num_frames, f"task {self.name}")
        plan = constant_plan(num_frames, self.input_frames, self.gap, rng)
        return Sample({"clip": plan}, {}, {"draw": rng.random(4)})

    def make_module(self, backbone: nn.Module) -> TimeCycleModule:
        layer = (deepest_time_keeping_layer(backbone, self.network_frames, self.size) if self.layer == "auto"
                 else self.layer)
        channels, h, w = probe_map_shape(backbone, layer, self.network_frames, self.size)
        return TimeCycleModule(channels, h, w, proj_dim=self.proj_dim, scale=self.scale, layer=layer,
                               top=self.top, jitter=self.jitter, max_rotation=self.max_rotation,
                               localiser=self.localiser)

    def loss(self, outputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
             extras: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        result = CycleResult(list(outputs["long_thetas"].unbind(1)), outputs["skip_theta"],
                             list(outputs["back_patches"].unbind(1)), list(outputs["back_thetas"].unbind(1)),
                             outputs["patch"])
        total, metrics = cycle_loss(result, outputs["theta_gt"], weight=self.weight, sim_weight=self.sim_weight)
        metrics["loss"] = float(total.detach())
        return total, metrics
