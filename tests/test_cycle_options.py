"""The two options the cycle diagnostics led to: circular spatial padding (no position cue for a
cycle loss to exploit) and the weightless soft-argmax localiser."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vsslkit.models.cycle import SoftArgmaxLocaliser, affinity, soft_argmax_theta
from vsslkit.models.padding import CircularSpatialConv3d, use_circular_spatial_padding
from vsslkit.tasks.timecycle import TimeCycleTask

torch.set_num_threads(1)


def _conv(seed: int = 0) -> nn.Conv3d:
    torch.manual_seed(seed)
    return nn.Conv3d(3, 4, kernel_size=3, padding=1)


def test_circular_padding_makes_the_convolution_commute_with_a_spatial_roll():
    x = torch.randn(1, 3, 4, 10, 10, generator=torch.Generator().manual_seed(1))
    plain = _conv()
    circular = use_circular_spatial_padding(nn.Sequential(_conv()))[0]
    assert isinstance(circular, CircularSpatialConv3d)
    roll = lambda t: torch.roll(t, shifts=(3, -2), dims=(-2, -1))
    assert torch.allclose(circular(roll(x)), roll(circular(x)), atol=1e-5)
    assert not torch.allclose(plain(roll(x)), roll(plain(x)), atol=1e-3)  # zero padding sees the border
    # away from the border the two paddings agree; the state dict is the plain one
    assert torch.allclose(circular(x)[..., 1:-1, 1:-1], plain(x)[..., 1:-1, 1:-1], atol=1e-6)
    assert circular.state_dict().keys() == plain.state_dict().keys()


def test_time_keeps_zero_padding():
    circular = use_circular_spatial_padding(nn.Sequential(_conv()))[0]
    x = torch.randn(1, 3, 4, 6, 6, generator=torch.Generator().manual_seed(2))
    y = x.clone()
    y[:, :, -1] += 5.0  # change only the last frame
    assert torch.allclose(circular(x)[:, :, 0], circular(y)[:, :, 0])  # frame 0 does not see it


def test_the_from_scratch_model_switches_padding_and_keeps_it_through_a_checkpoint(tmp_path):
    from vsslkit.train.from_scratch import FromScratchConfig, build_model, load_from_scratch

    config = FromScratchConfig(num_classes=3, padding="circular", localiser="soft-argmax")
    model = build_model(config)
    convs = [m for m in model.backbone.modules() if isinstance(m, nn.Conv3d) and any(m.padding[1:])]
    assert convs and all(isinstance(m, CircularSpatialConv3d) for m in convs)
    assert isinstance(model.head.branches["track"].localiser, SoftArgmaxLocaliser)
    plain = build_model(FromScratchConfig(num_classes=3))
    assert not any(isinstance(m, CircularSpatialConv3d) for m in plain.modules())
    torch.save({"model": model.state_dict(), "config": {"from_scratch": config.to_json()}}, tmp_path / "c.pt")
    loaded, loaded_config = load_from_scratch(tmp_path / "c.pt")
    assert loaded_config == config
    assert any(isinstance(m, CircularSpatialConv3d) for m in loaded.backbone.modules())
    with pytest.raises(ValueError, match="padding"):
        FromScratchConfig(num_classes=3, padding="reflect")


def test_the_soft_argmax_localiser_has_no_weights_and_reads_the_affinity():
    g = torch.Generator().manual_seed(3)
    image, patch = torch.randn(2, 8, 6, 6, generator=g), torch.randn(2, 8, 2, 2, generator=g)
    a = affinity(image, patch, 0.1)
    loc = SoftArgmaxLocaliser(6, 6, 1 / 3)
    assert list(loc.parameters()) == []
    assert torch.allclose(loc(a.reshape(2, 36, 2, 2)), soft_argmax_theta(a, 6, 6, 1 / 3))
    assert TimeCycleTask(localiser="soft-argmax").localiser == "soft-argmax"
    with pytest.raises(ValueError, match="localiser"):
        TimeCycleTask(localiser="oracle")


def test_the_direction_stride_reaches_the_branch_and_its_evaluation():
    import numpy as np

    from vsslkit.train.from_scratch import FromScratchConfig, build_joint, build_model, direction_accuracy

    config = FromScratchConfig(num_classes=3, direction_stride=3, clip_len=4, size=16, track_weight=0)
    task = build_joint(config).tasks["dir"]
    sample = task.sample(60, np.random.default_rng(0))
    assert set(np.abs(np.diff(sample.plan.indices)).tolist()) == {3}

    asked = []

    class Frames:  # records the frame indices it is asked for
        def read(self, path, indices):
            asked.append(np.asarray(indices))
            return np.zeros((len(indices), 16, 16, 3), dtype=np.uint8)

    direction_accuracy(build_model(config), ["a", "b"], [60, 60], Frames(), clip_len=4, size=16, stride=3)
    assert asked and all(set(np.abs(np.diff(i)).tolist()) == {3} for i in asked)
    asked.clear()  # residual: K+1 frames per clip, differenced to the K the branch reads
    scores = direction_accuracy(build_model(config), ["a"], [60], Frames(), clip_len=4, size=16, residual=True)
    assert {len(i) for i in asked} == {5} and scores["direction_clips"] == 4
    with pytest.raises(ValueError, match="direction_stride"):
        FromScratchConfig(num_classes=3, direction_stride=0)
