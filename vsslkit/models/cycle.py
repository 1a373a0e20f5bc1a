"""The geometry of cycle-consistency tracking (seed 001 §3.4, after X. Wang et al. 2019, TimeCycle).

Everything here works on feature maps `(B, C, H, W)` in torch's normalised coordinates
([-1, 1], `align_corners=False`: a map cell j sits at x = (2 j + 1) / W - 1). A patch is an affine
transform θ `(B, 2, 3)` of the unit square: output point p of the patch grid reads the map at
θ·[p, 1], so θ = [[s cos α, -s sin α, t_x], [s sin α, s cos α, t_y]] is a patch of half-side s
centred at (t_x, t_y), rotated by α. `affine_grid` + `grid_sample` is the bilinear sampler: the
same call cuts the ground-truth patch, and re-samples the patch a localiser predicted, so the
whole cycle is differentiable.

Why these pieces and not a tracker from a library: the loss needs the predicted θ to be a
differentiable function of the affinity, which is exactly the localiser (two convolutions + FC
on the affinity, as the thesis' Table/§3.4 and the public CycleTime code have it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

Localise = Callable[[torch.Tensor], torch.Tensor]
"""`(B, H*W, p, p)` affinity (image locations as channels) -> θ `(B, 2, 3)`."""


def affine_theta(tx: torch.Tensor, ty: torch.Tensor, alpha: torch.Tensor, scale: float) -> torch.Tensor:
    """θ `(B, 2, 3)` of a patch centred at (tx, ty), rotated by `alpha` radians, half-side `scale`."""
    cos, sin = torch.cos(alpha) * scale, torch.sin(alpha) * scale
    return torch.stack([torch.stack([cos, -sin, tx], -1), torch.stack([sin, cos, ty], -1)], -2)


def sample_patch(maps: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear sample of a `size`x`size` patch `(B, C, size, size)` of `maps` at θ (zeros outside)."""
    grid = F.affine_grid(theta.to(maps.dtype), [maps.shape[0], maps.shape[1], size, size], align_corners=False)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def cell_centres(height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """`(H*W, 2)` normalised (x, y) of every map cell, row-major (the order `flatten(2)` gives)."""
    ys = (2 * torch.arange(height, device=device, dtype=torch.float32) + 1) / height - 1
    xs = (2 * torch.arange(width, device=device, dtype=torch.float32) + 1) / width - 1
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], -1)


def affinity(image: torch.Tensor, patch: torch.Tensor, temperature: float) -> torch.Tensor:
    """A `(B, H*W, p*p)`: for each patch cell, a softmax over the image's locations of the
    feature similarity divided by `temperature` (every column sums to one)."""
    logits = torch.einsum("bci,bcj->bij", image.flatten(2), patch.flatten(2)) / temperature
    return logits.softmax(dim=1)


def as_localiser_input(a: torch.Tensor, patch_size: int) -> torch.Tensor:
    """The affinity as the localiser reads it: image locations as channels over the patch grid."""
    return a.reshape(a.shape[0], a.shape[1], patch_size, patch_size)


def soft_argmax_theta(a: torch.Tensor, height: int, width: int, scale: float) -> torch.Tensor:
    """A localiser with no weights: the patch centre is the affinity-weighted mean location,
    averaged over patch cells, with no rotation (box propagation and the tests use it)."""
    if a.dim() == 4:
        a = a.flatten(2)
    centres = cell_centres(height, width, a.device).to(a.dtype)  # (HW, 2)
    where = torch.einsum("bip,ic->bpc", a, centres).mean(1)  # (B, 2)
    return affine_theta(where[:, 0], where[:, 1], torch.zeros_like(where[:, 0]), scale)


def localiser_kernels(patch_size: int) -> tuple[int, int]:
    """Kernel sizes of the two localiser convolutions for a `patch_size` patch: each conv halves
    the side (rounding up), so any patch of at least 1x1 leaves a map of at least 1x1."""
    if patch_size < 1:
        raise ValueError(f"patch size must be >= 1, got {patch_size}")
    k1 = patch_size // 2 + 1
    mid = patch_size - k1 + 1
    return k1, mid // 2 + 1


class Localiser(nn.Module):
    """Affinity `(B, H*W, p, p)` -> (t_x, t_y, α) -> θ with the fixed scale: Conv(k1) → LeakyReLU
    → Conv(k2) → LeakyReLU → FC. The seed's 10x10 patch uses k = 4, 4; the kernels follow the
    patch size here (`localiser_kernels`) so one class serves every size."""

    def __init__(self, locations: int, patch_size: int, scale: float, *, hidden: tuple[int, int] = (64, 32)):
        super().__init__()
        k1, k2 = localiser_kernels(patch_size)
        side = patch_size - k1 + 1 - k2 + 1
        if side < 1:
            raise AssertionError(f"localiser for patch {patch_size} leaves a {side}x{side} map")
        self.patch_size, self.scale, self.side = patch_size, float(scale), side
        self.net = nn.Sequential(
            nn.Conv2d(locations, hidden[0], k1, bias=False), nn.LeakyReLU(0.1),
            nn.Conv2d(hidden[0], hidden[1], k2, bias=False), nn.LeakyReLU(0.1),
            nn.Flatten(), nn.Linear(hidden[1] * side * side, 3),
        )
        nn.init.zeros_(self.net[-1].weight)  # start at the centred, unrotated patch
        nn.init.zeros_(self.net[-1].bias)

    def params(self, a: torch.Tensor) -> torch.Tensor:
        """`(B, 3)` = (t_x, t_y, α)."""
        return self.net(a)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        out = self.params(a)
        return affine_theta(out[:, 0], out[:, 1], out[:, 2], self.scale)


class SoftArgmaxLocaliser(nn.Module):
    """A localiser with no weights (`localiser="soft-argmax"`): θ is the affinity-weighted mean
    location, averaged over patch cells, unrotated. Why it is offered: the cycle's gradient then
    reaches the features through the affinity itself instead of through a localiser that must
    first learn to read it (in 400-600 CPU steps the learned one barely moves, docs/results/
    from_scratch.md); the price is that the patch's angle is never predicted."""

    def __init__(self, height: int, width: int, scale: float):
        super().__init__()
        self.height, self.width, self.scale = height, width, float(scale)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return soft_argmax_theta(a, self.height, self.width, self.scale)


def grid_loss(theta: torch.Tensor, target: torch.Tensor, points: int = 20) -> torch.Tensor:
    """Mean squared distance between a `points`x`points` grid on [-1, 1]² moved by θ and by the
    target θ (the public code's TransformedGridLoss; the thesis' l_long / l_skip)."""
    axis = torch.linspace(-1, 1, points, device=theta.device, dtype=theta.dtype)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([x.flatten(), y.flatten(), torch.ones_like(x.flatten())], 0)  # (3, N)
    diff = (theta - target.to(theta.dtype)) @ grid  # (B, 2, N)
    return diff.pow(2).sum(1).mean()


@dataclass
class CycleResult:
    """What one forward of the cycles gives: θ at the end of every long cycle (length 1..k), the
    skip cycle's θ, the patch features tracked back 1..k frames, and the target patch."""

    long_thetas: list[torch.Tensor]
    skip_theta: torch.Tensor
    back_patches: list[torch.Tensor]
    back_thetas: list[torch.Tensor]
    patch: torch.Tensor


def track(image: torch.Tensor, patch: torch.Tensor, localise: Localise, *, temperature: float,
          patch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One step: where is `patch` in `image`? Returns (θ, the patch re-sampled there)."""
    a = affinity(image, patch, temperature)
    theta = localise(as_localiser_input(a, patch_size))
    return theta, sample_patch(image, theta, patch_size)


def cycles(frames: Sequence[torch.Tensor], theta_gt: torch.Tensor, localise: Localise, *, temperature: float,
           patch_size: int) -> CycleResult:
    """Backward-then-forward cycles on feature maps `frames[0..k]` (`frames[k]` is the target).

    The target patch is cut from `frames[k]` at θ_GT. Cycle c (1..k) tracks it back through
    frames k-1 … k-c and forward again through k-c+1 … k; the skip cycle goes straight from the
    target to frame 0 and back. The backward half is shared by every cycle (computed once).
    """
    k = len(frames) - 1
    if k < 1:
        raise ValueError(f"cycles need at least one past frame and the target, got {len(frames)} frames")
    target = frames[k]
    patch0 = sample_patch(target, theta_gt, patch_size)
    step = {"localise": localise, "temperature": temperature, "patch_size": patch_size}
    back_patches, back_thetas, current = [], [], patch0
    for i in range(1, k + 1):
        theta, current = track(frames[k - i], current, **step)
        back_patches.append(current)
        back_thetas.append(theta)
    long_thetas = []
    for c in range(1, k + 1):
        current, theta = back_patches[c - 1], back_thetas[c - 1]
        for t in range(k - c + 1, k + 1):
            theta, current = track(frames[t], current, **step)
        long_thetas.append(theta)
    _, skipped = track(frames[0], patch0, **step)
    skip_theta, _ = track(target, skipped, **step)
    return CycleResult(long_thetas, skip_theta, back_patches, back_thetas, patch0)


def similarity_loss(patch: torch.Tensor, tracked: torch.Tensor) -> torch.Tensor:
    """l_sim: the negative Frobenius inner product of two patch features, per patch cell (with
    L2-normalised features it lies in [-1, 1]; -1 is a perfect match)."""
    cells = patch.shape[-1] * patch.shape[-2]
    return -(patch * tracked).sum(dim=(1, 2, 3)).mean() / cells


def cycle_loss(result: CycleResult, theta_gt: torch.Tensor, *, weight: float = 0.1,
               sim_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """The thesis' eq. 3.3: Σ_i [l_sim^i + λ l_long^i] + λ l_skip (one skip cycle, λ = `weight`).

    `sim_weight` scales l_sim (1 in the thesis). Why it is a knob: l_sim alone is minimised by
    features that are the same everywhere (every tracked patch then matches its target), and in
    a short CPU run that collapse wins over the cycle terms; 0 leaves the geometric cycle losses."""
    sims = [similarity_loss(result.patch, p) for p in result.back_patches]
    longs = [grid_loss(t, theta_gt) for t in result.long_thetas]
    skip = grid_loss(result.skip_theta, theta_gt)
    total = sim_weight * sum(sims) + weight * sum(longs) + weight * skip
    metrics = {"sim": float(sum(sims).detach()) / len(sims), "long": float(sum(longs).detach()) / len(longs),
               "skip": float(skip.detach())}
    return total, metrics
