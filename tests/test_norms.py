"""Temporal group norm against hand-written references (plain tensor ops, one loop per group)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vsslkit.models import build_backbone
from vsslkit.models.norms import TemporalGroupNorm, num_temporal_groups

torch.set_num_threads(1)


def reference_tgn(x, bounds, weight, bias, eps, mean=None, var=None):
    """Per group and channel: (x - mean over (B, frames, H, W)) / sqrt(biased var + eps), then affine."""
    outs, means, vars_ = [], [], []
    for i, (start, stop) in enumerate(bounds):
        g = x[:, :, start:stop]
        if mean is None:
            mu = g.mean(dim=(0, 2, 3, 4))
            sq = ((g - mu.view(1, -1, 1, 1, 1)) ** 2).mean(dim=(0, 2, 3, 4))
        else:
            mu, sq = mean[i], var[i]
        y = (g - mu.view(1, -1, 1, 1, 1)) / torch.sqrt(sq.view(1, -1, 1, 1, 1) + eps)
        outs.append(y * weight[i].view(1, -1, 1, 1, 1) + bias[i].view(1, -1, 1, 1, 1))
        means.append(mu)
        n = g.numel() // g.shape[1]
        vars_.append(sq * n / (n - 1))  # running variance is unbiased, as in BatchNorm
    return torch.cat(outs, dim=2), torch.stack(means), torch.stack(vars_)


@pytest.mark.parametrize(
    "frames, groups, bounds",
    [
        (8, 4, [(0, 2), (2, 4), (4, 6), (6, 8)]),  # equal groups (fused path)
        (7, 3, [(0, 2), (2, 4), (4, 7)]),  # unequal groups (loop path): sizes differ by one
        (5, 5, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]),  # one frame per group
    ],
)
def test_train_and_eval_match_reference(frames, groups, bounds):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, frames, 5, 6, generator=gen) * 2 + 1
    tgn = TemporalGroupNorm(4, groups, eps=1e-5, momentum=0.3)
    with torch.no_grad():
        tgn.weight.copy_(torch.rand(groups, 4, generator=gen) + 0.5)
        tgn.bias.copy_(torch.randn(groups, 4, generator=gen))
    assert tgn.group_bounds(frames) == bounds

    x_ref = x.clone().requires_grad_(True)
    x_in = x.clone().requires_grad_(True)
    expected, mu, var = reference_tgn(x_ref, bounds, tgn.weight, tgn.bias, 1e-5)
    got = tgn.train()(x_in)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    # running stats: (1 - m) * initial + m * batch statistic, per group
    torch.testing.assert_close(tgn.running_mean, 0.3 * mu.detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(tgn.running_var, 0.7 + 0.3 * var.detach(), rtol=1e-4, atol=1e-5)
    # input gradients agree
    probe = torch.randn(got.shape, generator=gen)
    (expected * probe).sum().backward()
    (got * probe).sum().backward()
    torch.testing.assert_close(x_in.grad, x_ref.grad, rtol=1e-3, atol=1e-4)

    # eval: running statistics of each group, no update
    x2 = torch.randn(2, 4, frames, 5, 6, generator=gen)
    before = tgn.running_mean.clone()
    expected_eval, _, _ = reference_tgn(x2, bounds, tgn.weight, tgn.bias, 1e-5,
                                        mean=tgn.running_mean, var=tgn.running_var)
    torch.testing.assert_close(tgn.eval()(x2), expected_eval, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(tgn.running_mean, before)


def test_affine_gradient_matches_reference():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 6, 4, 4, generator=gen)
    tgn = TemporalGroupNorm(3, 3)
    weight = tgn.weight.detach().clone().requires_grad_(True)
    bias = tgn.bias.detach().clone().requires_grad_(True)
    expected, _, _ = reference_tgn(x, tgn.group_bounds(6), weight, bias, tgn.eps)
    probe = torch.randn(expected.shape, generator=gen)
    (expected * probe).sum().backward()
    (tgn(x) * probe).sum().backward()
    torch.testing.assert_close(tgn.weight.grad, weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(tgn.bias.grad, bias.grad, rtol=1e-4, atol=1e-4)


def test_one_group_is_batchnorm3d():
    """Seed 002 Table 6: g = T is plain batch norm (train output, running stats, eval output)."""
    gen = torch.Generator().manual_seed(2)
    tgn, bn = TemporalGroupNorm(5, 1, momentum=0.2), nn.BatchNorm3d(5, momentum=0.2)
    for _ in range(3):
        x = torch.randn(2, 5, 4, 3, 3, generator=gen) * 3
        torch.testing.assert_close(tgn.train()(x), bn.train()(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tgn.running_mean[0], bn.running_mean)
    torch.testing.assert_close(tgn.running_var[0], bn.running_var)
    x = torch.randn(2, 5, 4, 3, 3, generator=gen)
    torch.testing.assert_close(tgn.eval()(x), bn.eval()(x), rtol=1e-5, atol=1e-5)


def test_momentum_none_is_cumulative_average():
    gen = torch.Generator().manual_seed(3)
    tgn = TemporalGroupNorm(2, 2, momentum=None)
    batches = [torch.randn(2, 2, 4, 3, 3, generator=gen) + k for k in range(3)]
    for x in batches:
        tgn.train()(x)
    means = torch.stack([reference_tgn(x, [(0, 2), (2, 4)], tgn.weight, tgn.bias, 1e-5)[1] for x in batches])
    torch.testing.assert_close(tgn.running_mean, means.mean(0), rtol=1e-4, atol=1e-5)
    assert int(tgn.num_batches_tracked) == 3


def test_groups_are_independent():
    """Changing the frames of one group leaves the other groups' outputs unchanged (train mode)."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 8, 4, 4, generator=gen)
    y = x.clone()
    y[:, :, 6:] = y[:, :, 6:] * 10 + 5
    tgn = TemporalGroupNorm(3, 4)
    a, b = tgn(x), tgn(y)
    torch.testing.assert_close(a[:, :, :6], b[:, :, :6])
    bn = nn.BatchNorm3d(3)
    assert not torch.allclose(bn(x)[:, :, :6], bn(y)[:, :, :6])  # batch norm mixes the groups


def test_bad_inputs_are_named():
    tgn = TemporalGroupNorm(4, 4)
    with pytest.raises(ValueError, match="4 temporal groups got only 2 frames"):
        tgn(torch.randn(1, 4, 2, 3, 3))
    with pytest.raises(ValueError, match=r"expects \(B, 4, T, H, W\)"):
        tgn(torch.randn(1, 3, 8, 3, 3))
    with pytest.raises(ValueError):
        TemporalGroupNorm(4, 0)
    with pytest.raises(ValueError, match="tgn_group_frames"):
        num_temporal_groups(8, 0)


def groups_of(model):
    return [m.num_groups_t for m in model.modules() if isinstance(m, TemporalGroupNorm)]


def test_c3d_groups_follow_depth_table1_style():
    """16 frames, g = 2: conv1, conv2a see 16 frames, conv3 8, conv4 4, conv5 2 -> 8 8 4 4 2 2 1 1."""
    model = build_backbone("tiny_c3d", norm="tgn", in_frames=16, tgn_group_frames=2)
    assert groups_of(model) == [8, 8, 4, 4, 2, 2, 1, 1]
    assert not any(isinstance(m, nn.BatchNorm3d) for m in model.modules())


def test_resnet_groups_follow_temporal_strides():
    r3d = build_backbone("tiny_r3d", norm="tgn", in_frames=16, tgn_group_frames=4)
    # stem 16 frames, layer1 16, layer2 8 (its first conv and downsample see 16 and output 8), ...
    assert groups_of(r3d)[:3] == [4, 4, 4]
    assert groups_of(r3d)[-1] == 1  # layer4 sees 2 frames
    inflated = build_backbone("tiny_r50_inflated", norm="tgn", in_frames=8, tgn_group_frames=2)
    assert set(groups_of(inflated)) == {4}  # no temporal downsampling: same groups everywhere


def test_tgn_build_needs_clip_length():
    with pytest.raises(ValueError, match="in_frames"):
        build_backbone("tiny_r3d", norm="tgn")
    with pytest.raises(ValueError, match="norm must be"):
        build_backbone("tiny_r3d", norm="gn")


def test_other_clip_lengths_keep_the_group_count():
    """Built for 8 frames: 16 frames split into the same groups (twice as long); 2 frames is too few."""
    model = build_backbone("tiny_r3d", norm="tgn", in_frames=8, tgn_group_frames=2)
    assert model(torch.randn(1, 3, 16, 32, 32)).shape == (1, model.feature_dim)
    with pytest.raises(ValueError, match="4 temporal groups got only 2 frames"):
        model(torch.randn(1, 3, 2, 32, 32))
