"""Layer-dependable temporal group normalization (TGN, seed 002 §3.2, Table 1).

Batch norm pools the statistics of every frame of a clip; TGN splits the time axis into groups
of consecutive frames and normalises each channel over (batch, frames of the group, H, W)
separately per group, with its own affine parameters. Because the group size g is fixed while
the temporal size shrinks with depth, deeper layers have fewer groups ("layer-dependable").
With one group TGN *is* BatchNorm3d (Table 6 lists "g = 16 (= BN)" for 16-frame clips).

Inference: the paper does not spell it out; since one group equals BN, each group keeps BN-style
running mean/variance (shape `(num_groups, C)`) and uses them in eval mode.

Clip lengths: a layer is defined by its number of groups p. Group i covers frames
`[i*T//p, (i+1)*T//p)`, so when T is a multiple of p every group has T/p frames, and otherwise
the group sizes differ by at most one frame (never a wrap or a padded frame). A clip with fewer
frames than groups is an error.

`install_temporal_group_norm` swaps every BatchNorm3d of a built network for a TGN whose group
count follows the temporal size seen by that layer; the sizes are traced once on the meta
device (no memory, no compute), so it works for any backbone, including torchvision's blocks
that hard-code BatchNorm3d.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class TemporalGroupNorm(nn.Module):
    """Normalise `(B, C, T, H, W)` per channel and per temporal group (see module docstring)."""

    def __init__(self, num_channels: int, num_groups_t: int, eps: float = 1e-5,
                 momentum: float | None = 0.1):
        super().__init__()
        if num_channels < 1 or num_groups_t < 1:
            raise ValueError(f"TemporalGroupNorm needs num_channels >= 1 and num_groups_t >= 1, "
                             f"got {num_channels}, {num_groups_t}")
        self.num_channels, self.num_groups_t = num_channels, num_groups_t
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_groups_t, num_channels))
        self.bias = nn.Parameter(torch.zeros(num_groups_t, num_channels))
        self.register_buffer("running_mean", torch.zeros(num_groups_t, num_channels))
        self.register_buffer("running_var", torch.ones(num_groups_t, num_channels))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def extra_repr(self) -> str:
        return (f"{self.num_channels}, num_groups_t={self.num_groups_t}, eps={self.eps}, "
                f"momentum={self.momentum}")

    def group_bounds(self, num_frames: int) -> list[tuple[int, int]]:
        """Frame ranges `[start, stop)` of the groups for a clip of `num_frames` frames."""
        p = self.num_groups_t
        if num_frames < p:
            raise ValueError(f"TemporalGroupNorm with {p} temporal groups got only {num_frames} "
                             f"frames; build the backbone with in_frames equal to the clip length")
        return [(i * num_frames // p, (i + 1) * num_frames // p) for i in range(p)]

    def _average_factor(self) -> float:
        if not self.training:
            return 0.0
        self.num_batches_tracked.add_(1)
        if self.momentum is None:  # cumulative moving average, as BatchNorm does
            return 1.0 / float(self.num_batches_tracked)
        return self.momentum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != self.num_channels:
            raise ValueError(f"TemporalGroupNorm({self.num_channels}) expects (B, {self.num_channels}, "
                             f"T, H, W), got {tuple(x.shape)}")
        b, c, t, h, w = x.shape
        p = self.num_groups_t
        factor = self._average_factor()
        if t % p == 0:
            # Equal groups: (B, C, T, H, W) viewed as (B, C*p, g*H*W) makes each (channel, group)
            # one BN channel, so a single fused batch_norm call does the work.
            mean = self.running_mean.t().reshape(-1).clone()
            var = self.running_var.t().reshape(-1).clone()
            y = F.batch_norm(x.reshape(b, c * p, -1), mean, var, self.weight.t().reshape(-1),
                             self.bias.t().reshape(-1), self.training, factor, self.eps)
            if self.training:
                with torch.no_grad():
                    self.running_mean.copy_(mean.view(c, p).t())
                    self.running_var.copy_(var.view(c, p).t())
            return y.view(b, c, t, h, w)
        # Unequal groups: one batch_norm per group; row views update the running buffers in place.
        parts = [
            F.batch_norm(x[:, :, start:stop], self.running_mean[i], self.running_var[i],
                         self.weight[i], self.bias[i], self.training, factor, self.eps)
            for i, (start, stop) in enumerate(self.group_bounds(t))
        ]
        return torch.cat(parts, dim=2)


def num_temporal_groups(num_frames: int, group_frames: int) -> int:
    """Groups of a layer seeing `num_frames` frames with g = `group_frames` (Table 1: 16 / 2 = 8)."""
    if group_frames < 1:
        raise ValueError(f"tgn_group_frames must be >= 1, got {group_frames}")
    return max(1, math.ceil(num_frames / group_frames))


def trace_norm_frames(make_model: Callable[[], nn.Module], input_shape: tuple[int, ...]) -> dict[str, int]:
    """Temporal size seen by each BatchNorm3d, by module name, for an input of `input_shape`.

    Builds a throw-away copy on the meta device and runs it there: shapes only, no memory.
    """
    with torch.device("meta"):
        probe = make_model()
    frames: dict[str, int] = {}
    hooks = [module.register_forward_pre_hook(lambda _m, args, name=name: frames.__setitem__(name, args[0].shape[2]))
             for name, module in probe.named_modules() if isinstance(module, nn.BatchNorm3d)]
    probe.eval()
    with torch.no_grad():
        probe(torch.empty(input_shape, device="meta"))
    for hook in hooks:
        hook.remove()
    return frames


def install_temporal_group_norm(model: nn.Module, frames: dict[str, int], group_frames: int) -> nn.Module:
    """Replace the BatchNorm3d named in `frames` by TemporalGroupNorm (eps/momentum kept); in place."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.BatchNorm3d)]
    missing = sorted(set(names) - set(frames))
    if missing:
        raise ValueError(f"no traced temporal size for norm layers {missing} (are they used in forward?)")
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        bn = getattr(parent, attr)
        tgn = TemporalGroupNorm(bn.num_features, num_temporal_groups(frames[name], group_frames),
                                eps=bn.eps, momentum=bn.momentum)
        setattr(parent, attr, tgn.to(bn.weight.device))
    return model
