"""3D CNN backbones, temporal group normalization and small heads (depends on nothing of ours)."""

from vsslkit.models.backbones import BACKBONE_NAMES, LAYER_NAMES, build_backbone, count_parameters
from vsslkit.models.heads import LinearHead, MLPHead, MultiHead
from vsslkit.models.norms import TemporalGroupNorm

__all__ = ["BACKBONE_NAMES", "LAYER_NAMES", "LinearHead", "MLPHead", "MultiHead", "TemporalGroupNorm",
           "build_backbone", "count_parameters"]
