"""Small heads that sit on a backbone's `(B, feature_dim)` output.

Tiny modules in the spirit of lightly's heads: the user composes backbone + head + loss in a
few lines. `MultiHead` (wrapped in `tasks.base.OnPooled`) is what a classification task's `make_module` returns.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LinearHead(nn.Module):
    """Dropout then one linear layer (the fine-tuning classifier of the seeds: dropout 0.5)."""

    def __init__(self, in_dim: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(x))


class MLPHead(nn.Module):
    """Linear -> (BatchNorm1d) -> ReLU -> Linear: a projection head (MoCo v2 uses no batch norm)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, *, batch_norm: bool = False):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden, bias=not batch_norm),
            nn.BatchNorm1d(hidden) if batch_norm else nn.Identity(),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MultiHead(nn.Module):
    """One linear classifier per named head: `(B, in_dim)` -> `{name: (B, num_classes)}`."""

    def __init__(self, in_dim: int, heads: dict[str, int], *, dropout: float = 0.0):
        super().__init__()
        if not heads:
            raise ValueError("MultiHead needs at least one head")
        bad = {name: n for name, n in heads.items() if n < 1}
        if bad:
            raise ValueError(f"every head needs at least 1 class, got {bad}")
        self.heads = nn.ModuleDict({name: LinearHead(in_dim, n, dropout) for name, n in heads.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: head(x) for name, head in self.heads.items()}


class PairwiseOrderHead(nn.Module):
    """Order of n clips from their pooled features (seed 002 fig. 2c; VCOP's `VCOPN`).

    For every slot pair p < q: h_pq = ReLU(fc7([f_p ; f_q])) with one shared fc7; then
    Dropout(concat of all h_pq) and fc8 to n! classes. Pairs are taken in slot order, so the
    logits depend on which clip sits in which slot (which is what the label encodes).
    """

    def __init__(self, in_dim: int, clips: int, *, hidden: int = 512, dropout: float = 0.5):
        super().__init__()
        if clips < 2 or hidden < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"PairwiseOrderHead needs clips >= 2, hidden >= 1, dropout in [0, 1); "
                             f"got {clips}, {hidden}, {dropout}")
        self.clips = clips
        self.pairs = [(p, q) for p in range(clips) for q in range(p + 1, clips)]
        self.fc7 = nn.Linear(2 * in_dim, hidden)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.fc8 = nn.Linear(hidden * len(self.pairs), math.factorial(clips))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """`features`: n tensors `(B, in_dim)` in slot order -> logits `(B, n!)`."""
        if len(features) != self.clips:
            raise ValueError(f"expected {self.clips} clip features, got {len(features)}")
        h = [self.relu(self.fc7(torch.cat([features[p], features[q]], dim=1))) for p, q in self.pairs]
        return self.fc8(self.dropout(torch.cat(h, dim=1)))
