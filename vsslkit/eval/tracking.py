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
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsslkit.data import transforms as T
from vsslkit.eval.video_level_clips import fit_to
from vsslkit.models.cycle import affine_theta, affinity, as_localiser_input, sample_patch, soft_argmax_theta


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


@torch.no_grad()
def propagate(module: Any, backbone: torch.nn.Module, frames: torch.Tensor, start_xy: np.ndarray, *,
              method: str = "affinity") -> np.ndarray:
    """Centres `(T, 2)` in pixels of a box carried through `frames` (float `(1, 3, T, H, W)`) by
    the tracking module, starting at `start_xy` in frame 0: `method="affinity"` takes the
    affinity-weighted mean location, `"localiser"` the trained localiser's θ (with its angle)."""
    if method not in ("affinity", "localiser"):
        raise ValueError(f"method must be 'affinity' or 'localiser', got {method!r}")
    h, w = frames.shape[-2:]
    phi = module.embed(backbone.features(frames, layers=(module.layer,))[module.layer])[0]  # (d, T, h', w')
    mh, mw = phi.shape[-2:]
    # pixel index i is the normalised coordinate (2 i + 1) / size - 1 (align_corners=False)
    x, y = torch.tensor([(2 * start_xy[0] + 1) / w - 1]), torch.tensor([(2 * start_xy[1] + 1) / h - 1])
    theta = affine_theta(x, y, torch.zeros(1), module.scale)
    patch = sample_patch(phi[:, 0][None], theta, module.patch_size)
    out = [np.asarray(start_xy, dtype=np.float64)]
    for t in range(1, phi.shape[1]):
        image = phi[:, t][None]
        a = affinity(image, patch, module.temperature)
        if method == "affinity":
            theta = soft_argmax_theta(a, mh, mw, module.scale)
        else:
            theta = module.localiser(as_localiser_input(a, module.patch_size))
        patch = sample_patch(image, theta, module.patch_size)
        cx, cy = theta[0, 0, 2].item(), theta[0, 1, 2].item()
        out.append(np.array([((cx + 1) * w - 1) / 2, ((cy + 1) * h - 1) / 2]))
    return np.stack(out)


def tracking_error(model: Any, branch: str, root: str | Path, videos: Sequence[str | Path], source: Any, *,
                   size: int, steps: int = 3, gap: int = 4, windows_per_video: int = 2, seed: int = 0,
                   margin: float | None = None) -> dict[str, Any]:
    """Mean centre error (pixels of the network's `size` input) of the tracker in `model.head.branches[branch]`
    on `videos` of the synthetic set at `root`, against the constant-position baseline.

    Windows: up to `windows_per_video` per video, drawn (seeded) among those where the object
    stays inside the frame; frames are read from `source` (the frame store training used),
    resized to the `size` the network was trained at (`fit_to`; square synthetic frames are not
    cropped) and ground truth is scaled to it. Errors are averaged over every propagated frame
    (not the first, which is given)."""
    from vsslkit.data.synthetic import load_metadata, object_centres, params_from_record

    module = model.head.branches[branch]
    records = {Path(r["path"]).name: r for r in load_metadata(root)["videos"]}
    was_training = model.training
    model.eval()
    methods = ("affinity", "localiser")
    errors: dict[str, list[float]] = {m: [] for m in methods}
    per_step = {m: np.zeros(steps) for m in methods}
    baseline, per_step_base = [], np.zeros(steps)
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
                    pred = propagate(module, model.backbone, x, truth[0], method=m)
                    err = np.linalg.norm(pred[1:] - truth[1:], axis=1)
                    errors[m].append(err.mean())
                    per_step[m] += err
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
            "per_step_error_px": (per_step["affinity"] / n).tolist(),
            "per_step_localiser_px": (per_step["localiser"] / n).tolist(),
            "per_step_baseline_px": (per_step_base / n).tolist(),
            "windows": n, "skipped": skipped, "steps": steps, "gap": gap}


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Atomic JSON write (a kill never leaves half a file)."""
    from vsslkit.atomic import write_text_atomic

    path = Path(path)
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")
    return path
