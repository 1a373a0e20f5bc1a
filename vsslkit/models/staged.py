"""The building blocks every backbone shares: the width rule and `StagedMixin`.

A module of its own so `backbones.py` can import `c3d.py` and `resnet50_inflated.py` at the top
while they subclass `StagedMixin` (it lived in backbones.py, an import cycle).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

DEFAULT_LAYERS = ("pool3", "pool4", "pool5")


def scaled(channels: int, width: float) -> int:
    """Channel count scaled by the width multiplier (rounded, at least 1)."""
    return max(1, round(channels * width))


class StagedMixin:
    """`forward` and `features` for a network made of named stages run in order.

    Subclasses set `stage_attrs` (layer name, attribute holding the stage module), `aliases`
    (layer name -> name of the stage whose output it is) and `feature_dim`.
    """

    stage_attrs: ClassVar[tuple[tuple[str, str], ...]]
    aliases: ClassVar[dict[str, str]]
    feature_dim: int

    def _resolve(self, layer: str) -> str:
        names = [name for name, _ in self.stage_attrs]
        target = self.aliases.get(layer, layer)
        if target == "pre_pool":
            target = names[-1]
        if target not in names:
            raise ValueError(f"unknown layer {layer!r} for {type(self).__name__}; "
                             f"choose from {sorted(set(names) | set(self.aliases) | {'pre_pool'})}")
        return target

    def layer_module(self, layer: str) -> nn.Module:
        """The module whose output is `layer` (e.g. the grad-cam target for "pre_pool")."""
        return getattr(self, dict(self.stage_attrs)[self._resolve(layer)])

    def features(self, x: torch.Tensor, layers: Sequence[str] = DEFAULT_LAYERS) -> dict[str, torch.Tensor]:
        """5-D maps `(B, C, T', H', W')` of the requested layers; stops after the deepest one."""
        if isinstance(layers, str):
            layers = (layers,)
        wanted = {layer: self._resolve(layer) for layer in layers}
        order = [name for name, _ in self.stage_attrs]
        last = max((order.index(t) for t in wanted.values()), default=-1)
        maps: dict[str, torch.Tensor] = {}
        for name, attr in self.stage_attrs[: last + 1]:
            x = getattr(self, attr)(x)
            maps[name] = x
        return {layer: maps[target] for layer, target in wanted.items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Global average pool of the last stage: `(B, feature_dim)`."""
        for _, attr in self.stage_attrs:
            x = getattr(self, attr)(x)
        return x.mean(dim=(2, 3, 4))
