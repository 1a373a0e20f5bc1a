"""The one exponential-moving-average helper of the momentum branches (MoCo's key encoder now,
BYOL-style targets next): target <- m * target + (1 - m) * online, after every optimiser step.

Buffers (batch-norm running statistics) are a choice public code makes silently; here it is a
keyword. "own" (MoCo's and BYOL's reference code): the target's buffers are left alone, so they
are the running statistics of the target's *own* forward passes in train mode. "copy": take the
online network's buffers. "ema": average floating-point buffers like parameters (integer
buffers such as `num_batches_tracked` are copied).
"""

from __future__ import annotations

import torch
from torch import nn

BUFFER_POLICIES = ("own", "copy", "ema")


@torch.no_grad()
def update_momentum(online: nn.Module, target: nn.Module, momentum: float, *, buffers: str = "own") -> None:
    """`target`'s parameters move towards `online`'s; `momentum` = 1 keeps them, 0 copies them."""
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    if buffers not in BUFFER_POLICIES:
        raise ValueError(f"buffers must be one of {BUFFER_POLICIES}, got {buffers!r}")
    for pt, po in zip(target.parameters(), online.parameters(), strict=True):
        pt.mul_(momentum).add_(po.detach(), alpha=1.0 - momentum)
    if buffers == "own":
        return
    for bt, bo in zip(target.buffers(), online.buffers(), strict=True):
        if buffers == "ema" and bt.is_floating_point():
            bt.mul_(momentum).add_(bo.detach(), alpha=1.0 - momentum)
        else:
            bt.copy_(bo.detach())


@torch.no_grad()
def copy_weights(online: nn.Module, target: nn.Module) -> None:
    """target <- online for every parameter (start of training: the target is an exact copy)."""
    for pt, po in zip(target.parameters(), online.parameters(), strict=True):
        pt.copy_(po.detach())
