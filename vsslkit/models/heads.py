"""Small heads that sit on a backbone's `(B, feature_dim)` output.

Tiny modules in the spirit of lightly's heads: the user composes backbone + head + loss in a
few lines. `MultiHead` (wrapped in `tasks.base.OnPooled`) is what a classification task's `make_module` returns.
"""

from __future__ import annotations

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
