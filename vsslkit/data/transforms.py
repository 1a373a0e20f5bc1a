"""Clip-consistent input transforms on batched tensors.

Every frame of a clip gets the same crop and flip (a per-frame jitter would itself be a motion
cue). Transforms work on uint8 batches `(B, T, H, W, 3)` and run on whatever device the batch is
on, so augmentation moves to the GPU when there is one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# ImageNet statistics, as the seeds' backbones use.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def to_float_clips(frames: torch.Tensor) -> torch.Tensor:
    """uint8 `(B, T, H, W, 3)` → normalised float `(B, 3, T, H, W)`."""
    return _normalise_(frames.permute(0, 4, 1, 2, 3).float().div_(255.0))


def _normalise_(x: torch.Tensor) -> torch.Tensor:
    """ImageNet normalisation of float `(B, 3, T, H, W)` in [0, 1], in place."""
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1, 1)
    return x.sub_(mean).div_(std)  # in place: same values as (x - mean) / std, two fewer clip-sized buffers


def residual_frames(x: torch.Tensor) -> torch.Tensor:
    """Differences of consecutive frames: `(B, C, K+1, H, W)` → `(B, C, K, H, W)`.

    Residual input removes static appearance, so a small network must look at motion (on a
    CPU budget slim 3D CNNs learn from residuals, not from RGB; see TECH_NOTES).
    """
    if x.shape[2] < 2:
        raise ValueError(f"residual frames need at least 2 frames, got {x.shape[2]}")
    return x[:, :, 1:] - x[:, :, :-1]


def center_crop(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Centre square crop of uint8 `(B, T, H, W, 3)` (resizing first when a side is too small)."""
    frames = _ensure_min_side(frames, size)
    h, w = frames.shape[2], frames.shape[3]
    top, left = (h - size) // 2, (w - size) // 2
    return frames[:, :, top : top + size, left : left + size]


def random_crop_flip(
    frames: torch.Tensor, size: int, generator: torch.Generator, *, scale: tuple[float, float] = (0.6, 1.0), flip: bool = True,
    return_params: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-clip random resized square crop (+ horizontal flip), identical for every frame of a clip.

    The crop area is a fraction `scale` of the short side squared. All clips are cropped, resized
    and flipped in one batched `grid_sample` (bilinear), so this costs one op per batch, on the
    batch's device. Parameters are drawn from `generator` on the CPU, clip by clip.
    With `return_params`, also returns what was done to each clip, in the (possibly upscaled)
    input's pixels: `{"box": (B, 3) top, left, side; "flip": (B,) bool}` (tasks whose labels
    come from pixels or flip with the image read it).
    """
    pixels, params = _crop_flip_pixels(frames, size, generator, scale=scale, flip=flip)
    out = pixels.permute(0, 1, 3, 4, 2).to(torch.uint8)
    return (out, params) if return_params else out


def random_crop_flip_float(
    frames: torch.Tensor, size: int, generator: torch.Generator, *, scale: tuple[float, float] = (0.6, 1.0), flip: bool = True,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """`to_float_clips(random_crop_flip(...))` and the crop parameters, bit for bit, without the
    round trip through uint8: the training loop's path (two fewer clip-sized passes per batch,
    `vsslkit bench train`). Same random draws, same values, same memory layout."""
    pixels, params = _crop_flip_pixels(frames, size, generator, scale=scale, flip=flip)
    return _normalise_(pixels.permute(0, 2, 1, 3, 4).div_(255.0)), params


def _crop_flip_pixels(frames: torch.Tensor, size: int, generator: torch.Generator, *, scale: tuple[float, float],
                      flip: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The crops as float pixel values (whole numbers in 0..255), `(B, T, 3, size, size)`, and their parameters."""
    frames = _ensure_min_side(frames, size)
    b, t, h, w, c = frames.shape
    # Parameters as Python numbers, one tensor each at the end: element-wise tensor writes cost
    # more than the crop itself at classroom sizes (`vsslkit bench train`).
    thetas, boxes, flips = [], [], []
    for _ in range(b):
        s = float(torch.empty(1).uniform_(*scale, generator=generator))
        side = max(1, round(min(h, w) * s ** 0.5))
        top = int(torch.randint(0, h - side + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - side + 1, (1,), generator=generator))
        mirror = -1.0 if flip and bool(torch.randint(0, 2, (1,), generator=generator)) else 1.0
        boxes.append([top, left, side])
        flips.append(mirror < 0)
        # normalised coordinates (align_corners=False): pixel edges span [-1, 1]
        thetas.append([[mirror * side / w, 0.0, (2 * left + side) / w - 1],
                       [0.0, side / h, (2 * top + side) / h - 1]])
    theta = torch.tensor(thetas, dtype=torch.float32).reshape(b, 2, 3)
    boxes = torch.tensor(boxes, dtype=torch.long).reshape(b, 3)
    flips = torch.tensor(flips, dtype=torch.bool).reshape(b)
    # one pass: uint8 (B, T, H, W, C) → contiguous float (B, T, C, H, W)
    x = frames.permute(0, 1, 4, 2, 3).to(torch.float32, memory_format=torch.contiguous_format).view(b, t * c, h, w)
    grid = F.affine_grid(theta.to(x.device), [b, t * c, size, size], align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = out.reshape(b, t, c, size, size).round_().clamp_(0, 255)
    return out, {"box": boxes, "flip": flips}


def crop_flip_flow(flow: torch.Tensor, params: dict[str, torch.Tensor] | None, size: int) -> torch.Tensor:
    """Apply the crop and flip `random_crop_flip` recorded in `params` to the clips' optical flow.

    `flow` is float `(B, F, h, w, 2)` (u right, v down, in stored pixels) aligned with the frames
    the crop was drawn on; `params` None means the centre crop of `center_crop`. The window is
    resampled like the frames (bilinear, so labels see the network's pixels), the vectors are
    rescaled by the zoom (size / side) and, on a horizontal flip, u is mirrored AND negated
    (u'(x) = -u(W-1-x): a motion to the right becomes one to the left).
    """
    b, f, h0, w0, _ = flow.shape
    flow = flow.float()
    if min(h0, w0) < size:  # the frames were upscaled first (`_ensure_min_side`): so is the flow
        scale = size / min(h0, w0)
        new = (max(size, round(h0 * scale)), max(size, round(w0 * scale)))
        x = F.interpolate(flow.permute(0, 1, 4, 2, 3).reshape(b * f, 2, h0, w0), size=new, mode="bilinear",
                          align_corners=False)
        x = x * torch.tensor([new[1] / w0, new[0] / h0], device=x.device).view(1, 2, 1, 1)
        flow = x.reshape(b, f, 2, *new).permute(0, 1, 3, 4, 2)
    h, w = flow.shape[2], flow.shape[3]
    if params is None:
        top, left = (h - size) // 2, (w - size) // 2
        return flow[:, :, top : top + size, left : left + size].contiguous()
    theta = torch.zeros(b, 2, 3)
    gain = torch.zeros(b, 2)
    for i in range(b):
        top, left, side = (int(v) for v in params["box"][i])
        mirror = -1.0 if bool(params["flip"][i]) else 1.0
        theta[i, 0, 0], theta[i, 0, 2] = mirror * side / w, (2 * left + side) / w - 1
        theta[i, 1, 1], theta[i, 1, 2] = side / h, (2 * top + side) / h - 1
        gain[i] = torch.tensor([mirror * size / side, size / side])
    x = flow.permute(0, 1, 4, 2, 3).reshape(b, f * 2, h, w)
    grid = F.affine_grid(theta.to(x.device), [b, f * 2, size, size], align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = out.reshape(b, f, 2, size, size) * gain.to(x.device).view(b, 1, 2, 1, 1)
    return out.permute(0, 1, 3, 4, 2).contiguous()


def _ensure_min_side(frames: torch.Tensor, size: int) -> torch.Tensor:
    b, t, h, w, c = frames.shape
    if min(h, w) >= size:
        return frames
    scale = size / min(h, w)
    new = (max(size, round(h * scale)), max(size, round(w * scale)))
    x = frames.reshape(b * t, h, w, c).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=new, mode="bilinear", align_corners=False)
    return x.permute(0, 2, 3, 1).round_().clamp_(0, 255).to(torch.uint8).reshape(b, t, *new, c)
