"""Tracking you can check: propagate a box around the synthetic main object through held-out
frames and measure the centre error in pixels against the renderer's ground truth.

The synthetic renderer knows where its main object is in every frame
(`vsslkit.data.synthetic.object_centres`). A window is `steps + 1` frames `gap` apart (the
spacing the tracker was trained on) in which the object stays inside the frame (no wrap on the
torus: no tracker can follow an object through a wrap it never saw). The box starts on the true
centre in the first frame and is carried from frame to frame by the affinity of the trained,
projected features: the new centre is the affinity-weighted mean location of the previous
patch's cells (`soft_argmax_theta`), and the patch is re-sampled there. The baseline predicts
that the object stays where it started (constant position); an untrained network is a second,
fairer baseline (same code, random weights).

Two references say what the windows ask for. `radius` restricts each step's affinity to map
cells within that many cells (Chebyshev) of the previous centre, the local search window
label-propagation trackers use; without it the affinity-weighted mean of features that do not yet
discriminate is pulled to the frame's middle. `pixel_propagate` is a tracker with no network at
all (average-pooled, per-frame centred RGB, the same affinity and soft-argmax): where it beats the
constant position, the objects are trackable by their colour and a learned tracker that does not
beat it has not learned features as good as the pixels.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vsslkit.data import transforms as T
from vsslkit.eval.video_level_clips import fit_to
from vsslkit.models.cycle import (
    affine_theta,
    affinity,
    as_localiser_input,
    cell_centres,
    sample_patch,
    soft_argmax_theta,
)


def inside_windows(centres: np.ndarray, *, size: float, margin: float, steps: int, gap: int) -> list[int]:
    """Start frames of every window of `steps + 1` frames `gap` apart in which the object's
    centre stays `margin` px inside the frame and never jumps by more than half the frame (a
    wrap on the torus)."""
    starts = []
    span = steps * gap
    for s in range(len(centres) - span):
        window = centres[s : s + span + 1]
        inside = (window >= margin).all() and (window <= size - margin).all()
        if inside and np.abs(np.diff(window, axis=0)).max() < size / 2:
            starts.append(s)
    return starts


def local_affinity(image: torch.Tensor, patch: torch.Tensor, temperature: float, centre: torch.Tensor,
                   radius: int | None) -> torch.Tensor:
    """`affinity` with the softmax restricted to map cells within `radius` cells (Chebyshev) of
    `centre` (normalised x, y); `radius=None` is the plain affinity over the whole map."""
    if radius is None:
        return affinity(image, patch, temperature)
    mh, mw = image.shape[-2:]
    cells = cell_centres(mh, mw, image.device)  # (HW, 2) normalised
    far = ((cells - centre.to(cells.dtype)) * torch.tensor([mw / 2, mh / 2], device=cells.device)).abs().amax(1)
    logits = torch.einsum("bci,bcj->bij", image.flatten(2), patch.flatten(2)) / temperature
    return logits.masked_fill((far > radius + 1e-6)[None, :, None], float("-inf")).softmax(dim=1)


def carry(phi: torch.Tensor, start_xy: np.ndarray, size: tuple[int, int], *, scale: float, patch_size: int,
          temperature: float, radius: int | None = None, localiser: Any = None) -> np.ndarray:
    """Centres `(T, 2)` in pixels of an image of `size` (h, w) of a box carried through feature maps
    `phi` `(d, T, h', w')` from `start_xy` in frame 0: each step cuts the patch at the current θ,
    takes its affinity to the next frame and moves to the affinity-weighted mean location (or to
    the `localiser`'s θ, with its angle, when one is given)."""
    h, w = size
    mh, mw = phi.shape[-2:]
    # pixel index i is the normalised coordinate (2 i + 1) / size - 1 (align_corners=False)
    x, y = torch.tensor([(2 * start_xy[0] + 1) / w - 1]), torch.tensor([(2 * start_xy[1] + 1) / h - 1])
    theta = affine_theta(x, y, torch.zeros(1), scale)
    patch = sample_patch(phi[:, 0][None], theta, patch_size)
    out = [np.asarray(start_xy, dtype=np.float64)]
    for t in range(1, phi.shape[1]):
        image = phi[:, t][None]
        a = local_affinity(image, patch, temperature, theta[0, :, 2], radius)
        if localiser is None:
            theta = soft_argmax_theta(a, mh, mw, scale)
        else:
            theta = localiser(as_localiser_input(a, patch_size))
        patch = sample_patch(image, theta, patch_size)
        cx, cy = theta[0, 0, 2].item(), theta[0, 1, 2].item()
        out.append(np.array([((cx + 1) * w - 1) / 2, ((cy + 1) * h - 1) / 2]))
    return np.stack(out)


@torch.no_grad()
def propagate(module: Any, backbone: torch.nn.Module, frames: torch.Tensor, start_xy: np.ndarray, *,
              method: str = "affinity", radius: int | None = None) -> np.ndarray:
    """Centres `(T, 2)` in pixels of a box carried through `frames` (float `(1, 3, T, H, W)`) by
    the tracking module, starting at `start_xy` in frame 0: `method="affinity"` takes the
    affinity-weighted mean location, `"localiser"` the trained localiser's θ (with its angle);
    `radius` (map cells) restricts each step to a local search window."""
    if method not in ("affinity", "localiser"):
        raise ValueError(f"method must be 'affinity' or 'localiser', got {method!r}")
    phi = module.embed(backbone.features(frames, layers=(module.layer,))[module.layer])[0]  # (d, T, h', w')
    return carry(phi, start_xy, tuple(frames.shape[-2:]), scale=module.scale, patch_size=module.patch_size,
                 temperature=module.temperature, radius=radius,
                 localiser=module.localiser if method == "localiser" else None)


@torch.no_grad()
def pixel_propagate(frames: torch.Tensor, start_xy: np.ndarray, *, cell: int = 8, radius: int | None = 2,
                    temperature: float = 0.1, scale: float = 1 / 3) -> np.ndarray:
    """The network-free reference tracker: the same box propagation on RGB average-pooled to
    `cell`x`cell` px cells, centred per frame (a global brightness change does not move the box)
    and L2-normalised over the colour channels."""
    pooled = F.avg_pool3d(frames, (1, cell, cell))
    phi = F.normalize(pooled - pooled.mean(dim=(-1, -2), keepdim=True), dim=1)[0]
    patch_size = max(1, round(min(phi.shape[-2:]) * scale))
    return carry(phi, start_xy, tuple(frames.shape[-2:]), scale=scale, patch_size=patch_size,
                 temperature=temperature, radius=radius)


def tracking_error(model: Any, branch: str, root: str | Path, videos: Sequence[str | Path], source: Any, *,
                   size: int, steps: int = 3, gap: int = 4, windows_per_video: int = 2, seed: int = 0,
                   margin: float | None = None, radius: int | None = None) -> dict[str, Any]:
    """Mean centre error (pixels of the network's `size` input) of the tracker in `model.head.branches[branch]`
    on `videos` of the synthetic set at `root`, against the constant-position baseline.

    Windows: up to `windows_per_video` per video, drawn (seeded) among those where the object
    stays inside the frame; frames are read from `source` (the frame store training used),
    resized to the `size` the network was trained at (`fit_to`; square synthetic frames are not
    cropped) and ground truth is scaled to it. Errors are averaged over every propagated frame
    (not the first, which is given). `radius` is `propagate`'s local search window (map cells);
    the network-free `pixel_propagate` (8 px cells, radius 2) is scored on the same windows."""
    from vsslkit.data.synthetic import load_metadata, object_centres, params_from_record

    module = model.head.branches[branch]
    records = {Path(r["path"]).name: r for r in load_metadata(root)["videos"]}
    was_training = model.training
    model.eval()
    methods = ("affinity", "localiser")
    errors: dict[str, list[float]] = {m: [] for m in methods}
    per_step = {m: np.zeros(steps) for m in methods}
    baseline, per_step_base = [], np.zeros(steps)
    pixel, per_step_pixel = [], np.zeros(steps)
    skipped: list[str] = []
    try:
        for v, video in enumerate(videos):
            record = records.get(Path(video).name)
            if record is None:
                skipped.append(f"{video}: not in {root}/synthetic.json")
                continue
            params = params_from_record(record)
            centres = object_centres(params)
            limit = params.radius * 1.2 if margin is None else margin
            starts = inside_windows(centres, size=params.size, margin=limit, steps=steps, gap=gap)
            if not starts:
                skipped.append(f"{video}: the object never stays inside for {steps * gap + 1} frames")
                continue
            rng = np.random.default_rng([seed, v])
            for s in rng.choice(starts, size=min(windows_per_video, len(starts)), replace=False):
                indices = int(s) + gap * np.arange(steps + 1)
                clip = fit_to(torch.from_numpy(np.ascontiguousarray(source.read(Path(video), indices)))[None], size)
                truth = centres[indices] * size / params.size  # rendered pixels -> the network's input pixels
                x = T.to_float_clips(clip)
                for m in methods:
                    pred = propagate(module, model.backbone, x, truth[0], method=m, radius=radius)
                    err = np.linalg.norm(pred[1:] - truth[1:], axis=1)
                    errors[m].append(err.mean())
                    per_step[m] += err
                pix = np.linalg.norm(pixel_propagate(x, truth[0])[1:] - truth[1:], axis=1)
                pixel.append(pix.mean())
                per_step_pixel += pix
                base = np.linalg.norm(truth[1:] - truth[0], axis=1)
                baseline.append(base.mean())
                per_step_base += base
    finally:
        model.train(was_training)
    if not baseline:
        raise ValueError(f"no held-out window to track in ({len(skipped)} videos skipped, e.g. {skipped[:1]})")
    n = len(baseline)
    return {"centre_error_px": float(np.mean(errors["affinity"])),
            "localiser_error_px": float(np.mean(errors["localiser"])),
            "constant_baseline_px": float(np.mean(baseline)),
            "pixel_tracker_px": float(np.mean(pixel)), "radius": radius,
            "per_step_error_px": (per_step["affinity"] / n).tolist(),
            "per_step_localiser_px": (per_step["localiser"] / n).tolist(),
            "per_step_baseline_px": (per_step_base / n).tolist(),
            "per_step_pixel_px": (per_step_pixel / n).tolist(),
            "windows": n, "skipped": skipped, "steps": steps, "gap": gap}


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Atomic JSON write (a kill never leaves half a file)."""
    from vsslkit.atomic import write_text_atomic

    path = Path(path)
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")
    return path
