"""Seed 001's inflated ResNet-50 trunk: a 3D ResNet-50 that never reduces time.

Seed 001 §3.2 / Table 3.1: conv1 is a 1x7x7 conv (64 channels, stride 1,2,2) followed by a 1x3x3
max pool (stride 1,2,2); then conv2_x, conv3_x, conv4_x with 3, 4 and 6 bottleneck units of
1x1x1 / 1x3x3 / 1x1x1 convolutions (64/256, 128/512, 256/1024 channels), each conv followed by
batch norm and ReLU, projection shortcuts. Spatial downsampling happens in conv2 (the pool)
and conv3 (stride 2); conv4's stride is reduced from 2 to 1; the temporal stride is 1
everywhere, so the output is `(1024, T, H/8, W/8)` (13x30x30 for 13x240x240 in the seed).
The seed's conv5 belongs to its task branches (it downsamples time) and is not part of this
trunk. Every kernel has temporal size 1, so the weights have exactly the shapes of a 2D
ResNet-50's conv1..layer3 (ImageNet weights could be inflated into it).

Layers: conv1 (64w, T, H/2, W/2); pool1 (64w, T, H/4, W/4); pool2 = conv2_x (256w, T, H/4, W/4);
pool3 = conv3_x (512w, T, H/8, W/8); pool4 = conv4_x (1024w, T, H/8, W/8); pool5 and pre_pool
are aliases of pool4 (the trunk has no fifth stage). `feature_dim` = 1024 * width.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from vsslkit.models.staged import StagedMixin, scaled


class Bottleneck3d(nn.Module):
    """ResNet bottleneck in 3D: 1x1x1 -> 1x3x3 (spatial stride) -> 1x1x1 (x4), plus projection."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, temporal: int = 1):
        super().__init__()
        out_channels = planes * self.expansion
        # temporal > 1 (seed 001's conv5 only): a 3x3x3 middle conv whose temporal stride equals the spatial one
        t_stride = stride if temporal > 1 else 1
        self.conv1 = nn.Conv3d(in_channels, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, kernel_size=(temporal, 3, 3), stride=(t_stride, stride, stride),
                               padding=(temporal // 2, 1, 1), bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, kernel_size=1, stride=(t_stride, stride, stride), bias=False),
                nn.BatchNorm3d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def make_stage(in_channels: int, planes: int, units: int, stride: int, temporal: int = 1) -> nn.Sequential:
    """`units` bottlenecks; the first one carries the stride and the projection shortcut."""
    blocks = [Bottleneck3d(in_channels, planes, stride, temporal)]
    blocks += [Bottleneck3d(planes * Bottleneck3d.expansion, planes, 1, temporal) for _ in range(units - 1)]
    return nn.Sequential(*blocks)


class InflatedResNet50(StagedMixin, nn.Module):
    """The seed-001 trunk (see module docstring); temporal length in == temporal length out."""

    stage_attrs = (("conv1", "stem"), ("pool1", "maxpool"), ("pool2", "layer1"), ("pool3", "layer2"),
                   ("pool4", "layer3"))
    aliases: ClassVar[dict[str, str]] = {"pool5": "pool4"}
    units = (3, 4, 6)

    def __init__(self, *, width: float = 1.0, in_channels: int = 3, units: tuple[int, int, int] | None = None):
        super().__init__()
        if units is not None:  # fewer bottlenecks per stage: a CPU miniature (the seed's are 3, 4, 6)
            if len(units) != 3 or min(units) < 1:
                raise ValueError(f"units must be three counts >= 1, got {units}")
            self.units = tuple(int(u) for u in units)
        stem, p2, p3, p4 = (scaled(c, width) for c in (64, 64, 128, 256))
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, stem, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(stem),
            nn.ReLU(inplace=True),
        )
        self.maxpool = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.layer1 = make_stage(stem, p2, self.units[0], stride=1)
        self.layer2 = make_stage(p2 * 4, p3, self.units[1], stride=2)
        self.layer3 = make_stage(p3 * 4, p4, self.units[2], stride=1)  # seed: conv4 stride 2 -> 1
        self.feature_dim = p4 * 4
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


class InflatedResNet50Conv5(InflatedResNet50):
    """The trunk plus seed 001's shared task stage (§3.3, §3.5): a 3x3x3 max pool with stride 2 in
    time and space, then conv5 = `conv5_units` bottlenecks (3 in the seed; 1-2 for a CPU
    miniature) with 3x3x3 middle convs whose first one strides 2 in time and space.

    Why it lives in the backbone: the classification and the direction branch share this pool
    and conv5 (the reference code's `layer4` and `fc_bin`), so putting it here makes both heads
    read one `pooled` output, while tracking reads the res4 maps ("pool4") below it. Time is
    first reduced here, which is where all the temporal reasoning of this network happens.
    Layers: the trunk's, plus pool5 = conv5 output (2048w, ~T/4, H/32, W/32); `feature_dim` = 2048w.
    """

    stage_attrs = (*InflatedResNet50.stage_attrs, ("pool5", "conv5"))
    aliases: ClassVar[dict[str, str]] = {}

    def __init__(self, *, width: float = 1.0, in_channels: int = 3, units: tuple[int, int, int] | None = None,
                 conv5_units: int = 3):
        super().__init__(width=width, in_channels=in_channels, units=units)
        if conv5_units < 1:
            raise ValueError(f"conv5 needs at least one bottleneck, got {conv5_units}")
        p5 = scaled(512, width)
        self.conv5 = nn.Sequential(
            nn.MaxPool3d(kernel_size=3, stride=2, padding=1),
            *make_stage(self.feature_dim, p5, conv5_units, stride=2, temporal=3),
        )
        self.feature_dim = p5 * 4
        for m in self.conv5.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
