"""Copy backbone weights out of any vsslkit checkpoint (pretraining, classifier) or a foreign one.

One loader for the whole kit, so `finetune --init`, `retrieve`, `evaluate` and the notebooks
agree on what "load a pretrained backbone" means:

- the state dict is found under "model" / "state_dict" / "backbone", or is the bare dict;
- wrapper prefixes ("module." from DDP, "_orig_mod." from torch.compile) are stripped;
- when keys start with "backbone." (a `PretextModel` or a `VideoClassifier`) only those are
  used; heads, the classifier layer and MoCo's `contrastive.key_backbone.*` copy are ignored
  and listed as unexpected;
- a tensor under "backbone." that the backbone lacks, or one with another shape, means the
  checkpoint belongs to another architecture or width: an error naming the file.

Only torch and the leaf `vsslkit.errors` are imported here (models depend on nothing else of ours).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vsslkit.errors import checkpoint_error

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_BACKBONE = "backbone."


@dataclass(frozen=True)
class LoadReport:
    """Which checkpoint tensors went where: printed by the CLI so a silent mismatch is visible."""

    loaded: int
    missing: list[str]  # backbone parameters/buffers the checkpoint did not provide
    unexpected: list[str]  # checkpoint tensors that are not backbone weights (heads, MoCo copies, fc…)
    source_key: str  # where the state dict was found, e.g. "model"


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """`torch.load(weights_only=True)` on CPU; a missing or unreadable file raises naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise checkpoint_error(path, exc) from exc  # a ValueError; never suggests weights_only=False
    if not isinstance(raw, dict):
        raise TypeError(f"{path}: checkpoint holds a {type(raw).__name__}, expected a dict")
    return raw


def load_backbone_weights(backbone: nn.Module, checkpoint: str | os.PathLike) -> LoadReport:
    """Load `backbone`'s weights from `checkpoint` (see the module docstring); returns a `LoadReport`.

    Raises `ValueError` naming the file when nothing matches, when a backbone tensor has another
    shape, or when the checkpoint's backbone has tensors this backbone does not know.
    """
    path = Path(checkpoint)
    state, source = _find_state_dict(read_checkpoint(path), path)
    cleaned = {_strip_wrappers(k): v for k, v in state.items()}
    own = backbone.state_dict()
    source_has_backbone = any(k.startswith(_BACKBONE) for k in cleaned)
    if source_has_backbone:
        picked = {k[len(_BACKBONE):]: v for k, v in cleaned.items() if k.startswith(_BACKBONE)}
        others = sorted(k for k in cleaned if not k.startswith(_BACKBONE))
    else:  # a bare backbone state dict, possibly with a foreign classifier layer
        picked = cleaned
        others = sorted(k for k in cleaned if k not in own)
    usable = {k: v for k, v in picked.items() if k in own}
    for key, value in usable.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise ValueError(f"{path}: weights do not fit this backbone: {key} has shape {tuple(value.shape)}, "
                             f"the backbone expects {tuple(own[key].shape)}; use the same backbone and width "
                             "as the checkpoint")
    foreign = sorted(k for k in picked if k not in own) if source_has_backbone else []
    if foreign:
        raise ValueError(f"{path}: weights do not fit this backbone (the checkpoint's backbone has {len(foreign)} "
                         f"tensors this one lacks, e.g. {foreign[:3]}); use the same backbone and width as the "
                         "checkpoint")
    if not usable:
        raise ValueError(f"{path}: no tensor matches the backbone (no 'backbone.*' keys and none of "
                         f"{sorted(cleaned)[:5]} is a backbone tensor)")
    backbone.load_state_dict(usable, strict=False)
    return LoadReport(len(usable), sorted(k for k in own if k not in usable), others, source)


def _strip_wrappers(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def _find_state_dict(raw: dict[str, Any], path: Path) -> tuple[dict[str, torch.Tensor], str]:
    for key in ("model", "state_dict", "backbone"):
        if isinstance(raw.get(key), dict):
            return raw[key], key
    if raw and all(isinstance(v, torch.Tensor) for v in raw.values()):
        return raw, "<root>"
    raise ValueError(f"{path}: no state dict found (looked for 'model', 'state_dict', 'backbone' or a bare dict)")
