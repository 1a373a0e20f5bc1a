"""Class activation maps for 3D CNNs: where in space and time does the network look?

Two kinds, both returning one heat volume `(T, H, W)` in [0, 1] per clip:
- `activation_map`: the thesis' map (seed 000 §3.5.4): the channel mean of the last feature map
  before global pooling, upsampled to the clip. Needs no label and no gradient.
- `gradient_cam`: grad-cam's GradCAM / HiResCAM / GradCAM++ / LayerCAM on a 5-D target layer,
  for a chosen class of a classifier.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

# Methods checked to work on 5-D activations with grad-cam 1.5.7 (see tests/test_cam.py).
CAM_METHODS = ("gradcam", "hirescam", "gradcam++", "layercam")


def _normalise(volume: torch.Tensor) -> np.ndarray:
    volume = volume.float()
    lo, hi = volume.min(), volume.max()
    scaled = (volume - lo) / (hi - lo) if hi > lo else torch.zeros_like(volume)
    return scaled.cpu().numpy().astype(np.float32)


@torch.no_grad()
def activation_map(backbone: torch.nn.Module, clip: torch.Tensor, *, layer: str = "pre_pool") -> np.ndarray:
    """Channel-mean of `backbone.features(clip)[layer]`, trilinearly upsampled to `(T, H, W)`.

    `clip` is one input `(1, C, T, H, W)` or `(C, T, H, W)`; the map is min-max scaled to [0, 1].
    """
    if clip.dim() == 4:
        clip = clip.unsqueeze(0)
    if clip.shape[0] != 1:
        raise ValueError(f"activation_map takes one clip, got a batch of {clip.shape[0]}")
    return activation_maps(backbone, clip, layer=layer)[0]


@torch.no_grad()
def activation_maps(backbone: torch.nn.Module, clips: torch.Tensor, *, layer: str = "pre_pool") -> np.ndarray:
    """`activation_map` of a batch `(B, C, T, H, W)` in one forward pass: `(B, T, H, W)`, each clip
    min-max scaled on its own (so a batch gives exactly the per-clip maps, only faster)."""
    if clips.dim() != 5:
        raise ValueError(f"expected clips (B, C, T, H, W), got shape {tuple(clips.shape)}")
    was_training = backbone.training
    backbone.eval()
    try:
        fmap = backbone.features(clips, layers=(layer,))[layer]
    finally:
        backbone.train(was_training)
    heat = fmap.mean(dim=1, keepdim=True)
    heat = F.interpolate(heat, size=clips.shape[2:], mode="trilinear", align_corners=False)
    return np.stack([_normalise(h[0]) for h in heat])


def gradient_cam(
    model: torch.nn.Module,
    clip: torch.Tensor,
    target_layer: torch.nn.Module,
    *,
    method: str = "gradcam",
    target_class: int | None = None,
) -> np.ndarray:
    """A grad-cam heat volume `(T, H, W)` in [0, 1] for `target_class` (default: the prediction).

    `model` maps `(B, C, T, H, W)` to logits; `target_layer` is a module whose output is 5-D.
    """
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    classes = {"gradcam": GradCAM, "hirescam": HiResCAM, "gradcam++": GradCAMPlusPlus, "layercam": LayerCAM}
    if method not in classes:
        raise ValueError(f"unknown CAM method {method!r}; choose one of {CAM_METHODS}")
    if clip.dim() == 4:
        clip = clip.unsqueeze(0)
    was_training = model.training
    with torch.enable_grad():
        if target_class is None:
            with torch.no_grad():
                target_class = int(model.eval()(clip).argmax(1)[0])
        cam = classes[method](model=model, target_layers=[target_layer])
        try:
            heat = cam(input_tensor=clip, targets=[ClassifierOutputTarget(target_class)])
        finally:
            cam.activations_and_grads.release()
    model.train(was_training)
    heat = torch.as_tensor(np.asarray(heat, dtype=np.float32))[0]
    if heat.shape != clip.shape[2:]:  # grad-cam resizes only H, W on some versions: fit T too
        heat = F.interpolate(heat[None, None], size=clip.shape[2:], mode="trilinear", align_corners=False)[0, 0]
    return _normalise(heat)


def overlay(frames: np.ndarray, heat: np.ndarray, *, alpha: float = 0.45) -> np.ndarray:
    """Blend a jet-coloured heat volume `(T, H, W)` onto uint8 frames `(T, H, W, 3)`."""
    if frames.shape[:3] != heat.shape:
        raise ValueError(f"frames {frames.shape[:3]} and heat {heat.shape} differ in (T, H, W)")
    out = np.empty_like(frames)
    for t in range(len(frames)):
        colour = cv2.applyColorMap((heat[t] * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
        out[t] = (alpha * colour + (1 - alpha) * frames[t]).astype(np.uint8)
    return out


def heat_concentration(heat: np.ndarray, mask: np.ndarray) -> float:
    """Mean heat inside `mask` divided by mean heat outside it (> 1: the map favours the mask)."""
    mask = mask.astype(bool)
    if mask.shape != heat.shape:
        raise ValueError(f"mask {mask.shape} and heat {heat.shape} differ")
    if mask.all() or not mask.any():
        raise ValueError("mask must contain both object and background pixels")
    inside, outside = float(heat[mask].mean()), float(heat[~mask].mean())
    return inside / max(outside, 1e-8)
