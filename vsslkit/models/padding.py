"""Circular spatial padding for 3D convolutions, switched on for a built model.

Why: with zero padding a small feature map can encode where in the frame a cell is (the border is
visible through the padding), and a cycle-consistency loss can then be satisfied by features that
"stay put" — every cycle returns to its start without following anything (measured in
docs/results/from_scratch.md). Padding height and width circularly takes the position cue away,
and on the synthetic set it is also the world's own geometry (the renderer draws on a torus).
Time keeps its zero padding: frame 0 must not see the last frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CircularSpatialConv3d(nn.Conv3d):
    """`nn.Conv3d` whose spatial padding wraps around (its temporal padding stays zeros). Same
    parameters and state dict as the plain convolution, so checkpoints load either way."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        pt, ph, pw = self.padding
        if ph or pw:
            x = F.pad(x, (pw, pw, ph, ph, 0, 0), mode="circular")
        return F.conv3d(x, weight, bias, self.stride, (pt, 0, 0), self.dilation, self.groups)


def use_circular_spatial_padding(model: nn.Module) -> nn.Module:
    """Every zero-padded `nn.Conv3d` in `model` pads its spatial axes circularly (in place; returns
    `model`). Pooling layers keep their padding: a max pool's padding is never selected."""
    for m in model.modules():
        if type(m) is nn.Conv3d and m.padding_mode == "zeros" and isinstance(m.padding, tuple):
            m.__class__ = CircularSpatialConv3d
    return model
