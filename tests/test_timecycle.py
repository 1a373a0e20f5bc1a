"""Cycle-consistency tracking (seed 001 §3.4): the affine ground truth and the sampler against
hand-computed cases, the affinity's normalisation, a cycle on identity features, the localiser's
output size, the motion-placed patch, and one training step of the task branch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vsslkit.models.cycle import (
    Localiser,
    affine_theta,
    affinity,
    cycle_loss,
    cycles,
    grid_loss,
    localiser_kernels,
    sample_patch,
    soft_argmax_theta,
    track,
)
from vsslkit.models.resnet50_inflated import InflatedResNet50
from vsslkit.tasks import Joint
from vsslkit.tasks.model import PretextModel
from vsslkit.tasks.timecycle import TimeCycleTask, motion_patch_theta

torch.set_num_threads(1)


def ramp_map(size: int) -> torch.Tensor:
    """A 2-channel map whose channels are the normalised x and y of each cell (a linear ramp:
    bilinear sampling reproduces it exactly inside the map)."""
    centres = (2 * torch.arange(size, dtype=torch.float32) + 1) / size - 1
    y, x = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([x, y])[None]


def test_affine_theta_is_the_hand_computed_matrix():
    theta = affine_theta(torch.tensor([0.25]), torch.tensor([-0.5]), torch.tensor([math.pi / 2]), 0.5)
    expected = torch.tensor([[[0.0, -0.5, 0.25], [0.5, 0.0, -0.5]]])
    assert torch.allclose(theta, expected, atol=1e-6)


def test_sampler_recovers_a_known_shift_and_rotation():
    """Sampling a coordinate ramp at θ reads back, at each patch cell, θ·[cell, 1]; a least-squares
    fit of those reads gives back the shift and the rotation."""
    tx, ty, alpha, scale = 0.2, -0.15, math.radians(30), 0.4
    theta = affine_theta(torch.tensor([tx]), torch.tensor([ty]), torch.tensor([alpha]), scale)
    patch = sample_patch(ramp_map(32), theta, 6)[0]  # (2, 6, 6)
    cells = (2 * torch.arange(6, dtype=torch.float32) + 1) / 6 - 1
    gy, gx = torch.meshgrid(cells, cells, indexing="ij")
    design = torch.stack([gx.flatten(), gy.flatten(), torch.ones(36)], 1)
    fitted = torch.linalg.lstsq(design, patch.flatten(1).T).solution.T  # (2, 3) = θ
    assert torch.allclose(fitted, theta[0], atol=1e-4)
    assert math.isclose(math.degrees(math.atan2(fitted[1, 0], fitted[0, 0])), 30.0, abs_tol=0.05)
    assert math.isclose(float(fitted[0, 2]), tx, abs_tol=1e-4) and math.isclose(float(fitted[1, 2]), ty, abs_tol=1e-4)
    # one cell by hand: the patch's top-left cell (-5/6, -5/6) lands at θ·[-5/6, -5/6, 1]
    x0 = scale * (math.cos(alpha) * -5 / 6 - math.sin(alpha) * -5 / 6) + tx
    assert math.isclose(float(patch[0, 0, 0]), x0, abs_tol=1e-4)


def test_affinity_columns_sum_to_one():
    g = torch.Generator().manual_seed(0)
    image, patch = torch.randn(3, 8, 6, 6, generator=g), torch.randn(3, 8, 2, 2, generator=g)
    a = affinity(image, patch, temperature=0.125)
    assert a.shape == (3, 36, 4)
    assert torch.allclose(a.sum(1), torch.ones(3, 4), atol=1e-5)
    assert (a >= 0).all()


def one_hot_map(size: int) -> torch.Tensor:
    """Identity features: every cell its own unit vector (a cell matches only itself)."""
    return torch.eye(size * size).reshape(1, size * size, size, size)


def test_soft_argmax_tracking_recovers_a_known_shift():
    size, p, scale = 12, 4, 1 / 3
    frame = one_hot_map(size)
    moved = torch.roll(frame, shifts=(1, 2), dims=(2, 3))  # content moves 2 cells right, 1 down
    theta = affine_theta(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.0]), scale)
    patch = sample_patch(frame, theta, p)
    found, _ = track(moved, patch, lambda a: soft_argmax_theta(a, size, size, scale), temperature=0.01, patch_size=p)
    assert torch.allclose(found[0, :, 2], torch.tensor([2 * 2 / size, 1 * 2 / size]), atol=1e-4)


def test_a_cycle_on_identity_features_returns_to_its_start():
    size, p, scale = 12, 4, 1 / 3
    frames = [one_hot_map(size)] * 4
    theta_gt = affine_theta(torch.tensor([2 / 12 * 2]), torch.tensor([-2 / 12]), torch.tensor([0.0]), scale)
    result = cycles(frames, theta_gt, lambda a: soft_argmax_theta(a, size, size, scale), temperature=0.01, patch_size=p)
    assert len(result.long_thetas) == 3 and len(result.back_patches) == 3
    for theta in [*result.long_thetas, result.skip_theta]:
        assert torch.allclose(theta, theta_gt, atol=1e-4)
    _loss, metrics = cycle_loss(result, theta_gt)
    assert metrics["long"] < 1e-7 and metrics["skip"] < 1e-7
    assert math.isclose(metrics["sim"], -1.0, abs_tol=1e-4)  # every tracked patch equals the target's


def test_a_cycle_that_drifts_is_penalised():
    size, p, scale = 12, 4, 1 / 3
    frames = [one_hot_map(size)] * 4
    theta_gt = affine_theta(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.0]), scale)
    drift = lambda a: soft_argmax_theta(a, size, size, scale) + torch.tensor([[0, 0, 2 / 12], [0, 0, 0]])
    result = cycles(frames, theta_gt, drift, temperature=0.01, patch_size=p)
    _, metrics = cycle_loss(result, theta_gt)
    assert metrics["long"] > 0.01 and metrics["skip"] > 0.01


def test_grid_loss_is_zero_only_at_the_target():
    theta = affine_theta(torch.tensor([0.1]), torch.tensor([0.2]), torch.tensor([0.3]), 1 / 3)
    assert float(grid_loss(theta, theta)) == 0.0
    shifted = theta + torch.tensor([[0, 0, 0.1], [0, 0, 0]])
    assert math.isclose(float(grid_loss(shifted, theta)), 0.01, rel_tol=1e-4)  # every point moves 0.1


@pytest.mark.parametrize("patch_size", [1, 2, 3, 4, 5, 6, 8, 10, 12])
def test_localiser_output_size_for_every_patch_size(patch_size):
    k1, k2 = localiser_kernels(patch_size)
    assert patch_size - k1 + 1 - k2 + 1 >= 1
    size = 3 * patch_size
    loc = Localiser(size * size, patch_size, 1 / 3)
    theta = loc(torch.rand(2, size * size, patch_size, patch_size))
    assert theta.shape == (2, 2, 3)
    # a fresh localiser predicts the centred, unrotated patch at the fixed scale
    assert torch.allclose(theta, affine_theta(torch.zeros(2), torch.zeros(2), torch.zeros(2), 1 / 3))


def test_seed_kernel_sizes():
    """The seed's 10x10 patch: two convolutions then a 1x1-or-larger map; 4x4 gives the CPU
    miniature's k = 3, 2 (SPECS §4.4)."""
    assert localiser_kernels(4) == (3, 2)
    assert Localiser(144, 4, 1 / 3).side == 1


def test_motion_patch_is_placed_on_the_moving_square():
    clip = torch.zeros(2, 3, 4, 48, 48)
    clip[:, :, -1, 30:40, 6:16] = 1.0  # a square appears in the last frame only
    draws = torch.tensor([[0.0, 0.5, 0.5, 0.5], [0.0, 0.5, 0.5, 1.0]])
    theta = motion_patch_theta(clip, draws, scale=1 / 3, top=1, jitter=1 / 12)
    centre_px = (theta[:, :, 2] + 1) / 2 * 48  # (x, y) in pixels
    assert (centre_px[:, 0] - 11).abs().max() < 5 and (centre_px[:, 1] - 35).abs().max() < 5
    assert math.isclose(math.degrees(math.atan2(theta[1, 1, 0], theta[1, 0, 0])), 45.0, abs_tol=1e-3)
    assert math.isclose(float(theta[0, 1, 0]), 0.0, abs_tol=1e-6)  # draw 0.5: no rotation


def test_task_samples_deterministically_and_trains_one_step():
    task = TimeCycleTask(size=32, proj_dim=16)
    a = task.sample(40, np.random.default_rng(3))
    b = task.sample(40, np.random.default_rng(3))
    assert np.array_equal(a.plan.indices, b.plan.indices) and np.array_equal(a.extras["draw"], b.extras["draw"])
    assert np.all(np.diff(a.plan.indices) == 4) and len(a.plan) == 4
    torch.manual_seed(0)
    model = PretextModel(InflatedResNet50(width=0.125), Joint({"track": task}))
    g = torch.Generator().manual_seed(0)
    batch = {"clips": {"track.clip": torch.randn(2, 3, 4, 32, 32, generator=g)}, "labels": {},
             "extras": {"track.draw": torch.rand(2, 4, generator=g)}}
    loss, metrics = model.training_step(batch)
    loss.backward()
    assert math.isfinite(float(loss.detach())) and {"track.sim", "track.long", "track.skip"} <= set(metrics)
    assert model.head.branches["track"].localiser.net[-1].weight.grad.abs().sum() > 0
    assert model.backbone.stem[0].weight.grad.abs().sum() > 0  # the tracking loss reaches the trunk
