"""C3D with batch norm, the backbone of VCOP, pace prediction and playback-speed prediction.

Eight 3x3x3 convolutions with channels 64-128-256-256-512-512-512-512 (scaled by `width`), each
followed by BatchNorm3d and ReLU; max pooling (1,2,2) after conv1 and (2,2,2) after conv2,
conv3b and conv4b. Convolutions only: no fc6/fc7; the feature is the global average of conv5b
(seed 002 §3.2 "use the output of the Conv5b layer as a feature"). VCOP's extra max pool5
before the global average is left out: it needs T >= 2 at conv5, which 8-frame classroom clips
do not have.

Stage outputs for input `(B, C_in, T, H, W)`, width w:
    conv1 (64w, T, H, W)  pool1 (64w, T, H/2, W/2)  pool2 (128w, T/2, H/4, W/4)
    pool3 (256w, T/4, H/8, W/8)  pool4 (512w, T/8, H/16, W/16)  pool5 = pre_pool (512w, same)
For 16 frames the norms see T = 16, 16, 8, 8, 4, 4, 2, 2, so TGN with g = 2 has
8, 8, 4, 4, 2, 2, 1, 1 groups. (Seed 002's Table 1 lists 16, 8, 4, 2, 2 per block because its
C3D pools time after conv1 as well; we keep VCOP's (1,2,2) first pool.)
"""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from vsslkit.models.staged import StagedMixin, scaled

CHANNELS = (64, 128, 256, 256, 512, 512, 512, 512)


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3x3 conv (padding 1) + BatchNorm3d + ReLU."""
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
    )


class C3D(StagedMixin, nn.Module):
    """C3D-BN trunk; `feature_dim` = 512 * width."""

    stage_attrs = (("conv1", "conv1"), ("pool1", "pool1"), ("pool2", "block2"), ("pool3", "block3"),
                   ("pool4", "block4"), ("pool5", "block5"))
    aliases: ClassVar[dict[str, str]] = {}

    def __init__(self, *, width: float = 1.0, in_channels: int = 3):
        super().__init__()
        c = [scaled(ch, width) for ch in CHANNELS]
        self.conv1 = conv_bn_relu(in_channels, c[0])
        self.pool1 = nn.MaxPool3d(kernel_size=(1, 2, 2), stride=(1, 2, 2))
        self.block2 = nn.Sequential(conv_bn_relu(c[0], c[1]), nn.MaxPool3d(2, 2))
        self.block3 = nn.Sequential(conv_bn_relu(c[1], c[2]), conv_bn_relu(c[2], c[3]), nn.MaxPool3d(2, 2))
        self.block4 = nn.Sequential(conv_bn_relu(c[3], c[4]), conv_bn_relu(c[4], c[5]), nn.MaxPool3d(2, 2))
        self.block5 = nn.Sequential(conv_bn_relu(c[5], c[6]), conv_bn_relu(c[6], c[7]))
        self.feature_dim = c[7]
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
