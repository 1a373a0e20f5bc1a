"""`build_backbone`: every 3D CNN of the seeds behind one small interface.

A backbone maps clips `(B, C_in, T, H, W)` to `(B, feature_dim)` (global average pool of its
last stage) and exposes intermediate maps with `.features(x, layers)`. Layer names, for every
backbone ("stage k" = conv{k}_x of a ResNet, the k-th conv block of C3D):

    conv1     output of the stem / first conv block
    pool1     after the first pooling (an alias of conv1 where the stem has no pooling)
    pool2     output of stage 2 (ResNet conv2_x = torchvision layer1; C3D conv2a + pool2)
    pool3     output of stage 3 (conv3_x = layer2; C3D conv3a/b + pool3)
    pool4     output of stage 4 (conv4_x = layer3; C3D conv4a/b + pool4)
    pool5     output of stage 5 (conv5_x = layer4; C3D conv5a/b)
    pre_pool  the last map before global pooling (= pool5; the CAM target)

Shapes for input `(B, 3, T, H, W)` and width w (channels are rounded, at least 1):

    r3d / r2plus1d   conv1 (64w, T, H/2, W/2)   pool2 (64w, T, H/2, W/2)  pool3 (128w, T/2, H/4, W/4)
                     pool4 (256w, T/4, H/8, W/8)   pool5 (512w, T/8, H/16, W/16)
    mc3              as r3d but no temporal stride after pool2: pool3..pool5 keep T frames
    c3d              see `vsslkit.models.c3d` (pool5: 512w, T/8, H/16, W/16)
    s3d              see `S3DBackbone` (pool5: 1024, T/8, H/32, W/32)
    r50_inflated     see `vsslkit.models.resnet50_inflated` (T is never reduced)

Sizes round down (`ceil` for strided convs with padding 1, e.g. T=1 stays 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from torch import nn
from torchvision.models.video import s3d as tv_s3d
from torchvision.models.video.resnet import (
    BasicBlock,
    Conv2Plus1D,
    Conv3DNoTemporal,
    Conv3DSimple,
    VideoResNet,
)

from vsslkit.models.c3d import C3D
from vsslkit.models.norms import install_temporal_group_norm, trace_norm_frames
from vsslkit.models.resnet50_inflated import InflatedResNet50
from vsslkit.models.staged import StagedMixin, scaled

LAYER_NAMES = ("conv1", "pool1", "pool2", "pool3", "pool4", "pool5", "pre_pool")

# Classroom presets: (base name, depth, width). R3D-10 at width 0.25 is TECH_NOTES' 0.9 M model.
TINY_PRESETS: dict[str, tuple[str, int | None, float]] = {
    "tiny_r3d": ("r3d", 10, 0.25),
    "tiny_mc3": ("mc3", 10, 0.25),
    "tiny_r2plus1d": ("r2plus1d", 10, 0.25),
    "tiny_c3d": ("c3d", None, 0.25),
    "tiny_r50_inflated": ("r50_inflated", None, 0.25),
}
BACKBONE_NAMES = ("c3d", "r3d_10", "r3d_18", "mc3_10", "mc3_18", "r2plus1d_10", "r2plus1d_18", "s3d",
                  "r50_inflated", *TINY_PRESETS)


class ScaledStem(nn.Sequential):
    """torchvision's BasicStem with a chosen width and input channels (3x7x7, stride 1,2,2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv3d(in_channels, out_channels, kernel_size=(3, 7, 7), stride=(1, 2, 2),
                      padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )


class ScaledR2Plus1dStem(nn.Sequential):
    """torchvision's R2Plus1dStem (1x7x7 to 45 channels, then 3x1x1) with the 45 scaled too."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int):
        super().__init__(
            nn.Conv3d(in_channels, mid_channels, kernel_size=(1, 7, 7), stride=(1, 2, 2),
                      padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid_channels, out_channels, kernel_size=(3, 1, 1), stride=(1, 1, 1),
                      padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )


class VideoResNetBackbone(StagedMixin, VideoResNet):
    """torchvision VideoResNet without `fc`, with a width multiplier and any input channels.

    VideoResNet.__init__ hard-codes 64 stem channels and 64-128-256-512 stage widths, so this
    re-does its few lines with scaled widths and reuses its `_make_layer`, blocks and conv
    makers unchanged (Conv2Plus1D derives its midplanes from the scaled widths by itself).
    At width 1 the parameters are exactly torchvision's minus the classifier.
    """

    stage_attrs = (("conv1", "stem"), ("pool2", "layer1"), ("pool3", "layer2"),
                   ("pool4", "layer3"), ("pool5", "layer4"))
    aliases: ClassVar[dict[str, str]] = {"pool1": "conv1"}

    def __init__(self, conv_makers: Sequence[type[nn.Module]], layers: Sequence[int], stem: nn.Module,
                 widths: Sequence[int]):
        nn.Module.__init__(self)
        self.inplanes = widths[0]
        self.stem = stem
        self.layer1 = self._make_layer(BasicBlock, conv_makers[0], widths[0], layers[0], stride=1)
        self.layer2 = self._make_layer(BasicBlock, conv_makers[1], widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(BasicBlock, conv_makers[2], widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(BasicBlock, conv_makers[3], widths[3], layers[3], stride=2)
        self.feature_dim = widths[3] * BasicBlock.expansion
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


class S3DBackbone(StagedMixin, nn.Module):
    """torchvision `s3d(weights=None)` trunk (feature_dim 1024), split into named stages.

    conv1 = separable 7x7x7 conv (stride 2,2,2) -> (64, T/2, H/2, W/2); pool1 = 1x3x3 max pool
    -> (64, T/2, H/4, W/4); pool2 = 1x1 + separable 3x3 conv + pool -> (192, T/2, H/8, W/8);
    pool3 = Mixed_3b/3c -> (480, T/2, H/8, W/8); pool4 = 3x3x3 pool + Mixed_4b..4f ->
    (832, T/4, H/16, W/16); pool5 = 2x2x2 pool + Mixed_5b/5c -> (1024, T/8, H/32, W/32).
    Parameter names differ from torchvision's (`conv1.*` instead of `features.0.*`).
    """

    stage_attrs = (("conv1", "conv1"), ("pool1", "pool1"), ("pool2", "pool2"), ("pool3", "pool3"),
                   ("pool4", "pool4"), ("pool5", "pool5"))
    aliases: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        super().__init__()
        f = tv_s3d(weights=None).features
        self.conv1, self.pool1, self.pool2 = f[0], f[1], f[2:5]
        self.pool3, self.pool4, self.pool5 = f[5:7], f[7:13], f[13:16]
        self.feature_dim = 1024


def _split_name(name: str, depth: int | None, width: float) -> tuple[str, int | None, float]:
    if name in TINY_PRESETS:
        if depth is not None or width != 1.0:
            raise ValueError(f"{name} is a preset {TINY_PRESETS[name]}; pass its base name to set depth/width")
        return TINY_PRESETS[name]
    for base in ("r3d", "mc3", "r2plus1d"):
        suffix = name[len(base) + 1:]
        if name == base or (name.startswith(base + "_") and suffix.isdigit()):
            name_depth = int(suffix) if suffix else None
            if depth is not None and name_depth is not None and depth != name_depth:
                raise ValueError(f"backbone {name!r} has depth {name_depth}, but depth={depth} was given")
            return base, depth or name_depth or 18, width
    return name, depth, width


def _video_resnet(kind: str, depth: int, width: float, in_channels: int) -> VideoResNetBackbone:
    blocks = {10: [1, 1, 1, 1], 18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}
    if depth not in blocks:
        raise ValueError(f"{kind} depth must be one of {sorted(blocks)} (BasicBlock ResNets), got {depth}")
    widths = [scaled(c, width) for c in (64, 128, 256, 512)]
    if kind == "r3d":
        makers, stem = [Conv3DSimple] * 4, ScaledStem(in_channels, widths[0])
    elif kind == "mc3":
        makers, stem = [Conv3DSimple] + [Conv3DNoTemporal] * 3, ScaledStem(in_channels, widths[0])
    else:
        makers, stem = [Conv2Plus1D] * 4, ScaledR2Plus1dStem(in_channels, widths[0], scaled(45, width))
    return VideoResNetBackbone(makers, blocks[depth], stem, widths)


def _build_bn(name: str, depth: int | None, width: float, in_channels: int) -> nn.Module:
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    if name in ("r3d", "mc3", "r2plus1d"):
        return _video_resnet(name, depth, width, in_channels)
    if depth is not None:
        raise ValueError(f"backbone {name!r} has a fixed depth; depth={depth} is only for r3d/mc3/r2plus1d")
    if name == "c3d":
        return C3D(width=width, in_channels=in_channels)
    if name == "r50_inflated":
        return InflatedResNet50(width=width, in_channels=in_channels)
    if name == "s3d":
        if width != 1.0 or in_channels != 3:
            raise ValueError("s3d is torchvision's fixed network: width must be 1.0 and in_channels 3")
        return S3DBackbone()
    raise ValueError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONE_NAMES)}")


def build_backbone(name: str, *, width: float = 1.0, norm: str = "bn", depth: int | None = None,
                   in_channels: int = 3, in_frames: int | None = None, tgn_group_frames: int = 2,
                   trace_size: int = 112) -> nn.Module:
    """Build a backbone by name (see BACKBONE_NAMES and the module docstring).

    - `width` scales every stage's channels (0.25 -> 16-32-64-128 for the ResNets).
    - `depth`: 10 (one BasicBlock per stage), 18 or 34 for r3d / mc3 / r2plus1d ("r3d_10" is
      the same as name="r3d", depth=10).
    - `norm="bn"` (BatchNorm3d) or `"tgn"`: temporal group norm with `tgn_group_frames` frames per
      group; the number of groups of each layer follows the temporal size that layer sees for
      clips of `in_frames` frames (required for tgn), so it shrinks with depth (seed 002,
      Table 1). `trace_size` is the spatial size used to trace those temporal sizes (on the meta
      device, free). Clips of another length still run when each layer has at least as many
      frames as groups: every layer then splits its frames into the same number of groups.
    """
    base, depth, width = _split_name(name, depth, width)

    def make() -> nn.Module:
        return _build_bn(base, depth, width, in_channels)

    if norm == "bn":
        return make()
    if norm != "tgn":
        raise ValueError(f"norm must be 'bn' or 'tgn', got {norm!r}")
    if in_frames is None or in_frames < 1:
        raise ValueError(f"norm='tgn' needs in_frames (the clip length), got {in_frames}")
    frames = trace_norm_frames(make, (1, in_channels, in_frames, trace_size, trace_size))
    return install_temporal_group_norm(make(), frames, tgn_group_frames)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in module.parameters())

