"""A network-free probe: can hand-made motion energy solve a pretext task on this data?

Before blaming a model for a pretext head stuck at chance, ask whether the data shows the signal
at all. For speed tasks the signal is how far things move per sampled step, and the simplest
measurement of it is the mean absolute residual (frame difference) of every clip element. A
gradient-boosted classifier on that profile, fitted on clips of the training videos and scored on
clips of other videos, gives a floor for what a network should reach; near chance means the data
hides the signal (this found the white camera jitter of synthetic set version 1, see
docs/results/pretext.md).

`--task arrow-of-time` (forward = 0 vs reversed = 1 constant-stride clips) needs features that
keep the sign of time, which |residual| energy drops: `direction_features` measures how mean
intensity, contrast and sharpness change step by step, and the mean vertical optical flow
(things fall). On a time-symmetric set (synthetic version 2) they cannot beat chance; on one
with irreversible physics (version 3) they should.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier

from vsslkit.data.clips import ClipDataset, collate, prepare_batch
from vsslkit.plans import Sample
from vsslkit.tasks import ArrowOfTimeTask, make_task

ARROW_OF_TIME = "arrow-of-time"


def motion_energy(clips: torch.Tensor) -> np.ndarray:
    """Residual clips `(B, C, T, H, W)` -> `(B, 2T)`: mean |residual| per element, then that profile
    divided by its clip mean (so a change shows as a step whatever the scene's contrast)."""
    if clips.dim() != 5:
        raise ValueError(f"expected clips (B, C, T, H, W), got shape {tuple(clips.shape)}")
    energy = clips.abs().mean(dim=(1, 3, 4))
    profile = energy / energy.mean(dim=1, keepdim=True).clamp_min(1e-8)
    return torch.cat([energy, profile], dim=1).numpy()


def direction_features(clips: torch.Tensor, *, cells: int = 4) -> np.ndarray:
    """Raw clips `(B, C, T, H, W)` -> `(B, 14)`: statistics of time's direction that flip under reversal.

    Irreversible change starts abruptly and relaxes smoothly (a drop lands then spreads, a ripple
    starts then fades): a large frame difference at a pixel is followed by smaller ones, while
    played backwards small ones lead up to a large one. With d_t the per-pixel difference of the
    lightly blurred grey clip, q_L = d_t^2 |d_t+L| - |d_t| d_t+L^2 measures that, whatever the sign
    of the colour change, and exactly changes sign under reversal. It is averaged per cell of a
    `cells` x `cells` grid and normalised there, so the main object (a few cells) cannot dominate;
    per lag L = 1, 2, 3: the median over cells, the share of positive cells and the mean (9).
    Then, at the 3 % of pixels with the largest change: how much more they change one step after
    their peak than one step before (onsets), mean and share (2); the summed change of mean grey
    level and the median over cells of the mean vertical Farneback flow (things fall) (2); and
    the share of the clip's change in its second half (1). A time-symmetric video gives both
    labels the same feature distribution (the probe then stays at chance).
    """
    if clips.dim() != 5 or clips.shape[2] < 5:
        raise ValueError(f"expected clips (B, C, T>=5, H, W), got shape {tuple(clips.shape)}")
    grey = clips.mean(dim=1).numpy()  # (B, T, H, W)
    return np.stack([_clip_direction_features(clip, cells) for clip in grey]).astype(np.float32)


def _clip_direction_features(grey: np.ndarray, cells: int) -> np.ndarray:
    steps, h, w = grey.shape[0] - 1, grey.shape[1] // cells * cells, grey.shape[2] // cells * cells
    grey = np.stack([cv2.GaussianBlur(frame, (5, 5), 1.0) for frame in grey[:, :h, :w]])  # tame pixel noise

    def per_cell(x: np.ndarray) -> np.ndarray:  # (t, h, w) -> (cells * cells,) means
        return x.reshape(len(x), cells, h // cells, cells, w // cells).mean(axis=(0, 2, 4)).ravel()

    d = np.diff(grey, axis=0)
    a = np.abs(d)
    out = []
    for lag in (1, 2, 3):
        q = per_cell(d[:-lag] ** 2 * a[lag:] - a[:-lag] * d[lag:] ** 2)
        q /= per_cell(a[:-lag] * (a[:-lag] + a[lag:]) * a[lag:]) + 1e-12
        out += [float(np.median(q)), float(np.mean(q > 0)), float(q.mean())]
    peak_at, peak = a.argmax(axis=0), a.max(axis=0)
    inner = (peak >= np.quantile(peak, 0.97)) & (peak_at > 0) & (peak_at < steps - 1)
    before = np.take_along_axis(a, np.clip(peak_at - 1, 0, steps - 1)[None], 0)[0][inner]
    after = np.take_along_axis(a, np.clip(peak_at + 1, 0, steps - 1)[None], 0)[0][inner]
    out += [float(np.mean((after - before) / peak[inner])) if inner.any() else 0.0,
            float(np.mean(after > before)) if inner.any() else 0.5]
    lo, hi = float(grey.min()), float(grey.max())
    frames = ((grey - lo) / max(hi - lo, 1e-6) * 255).astype(np.uint8)
    flow = np.stack([cv2.calcOpticalFlowFarneback(frames[t], frames[t + 1], None, 0.5, 2, 9, 3, 5, 1.1, 0)[..., 1]
                     for t in range(steps)])
    out += [float(grey[-1].mean() - grey[0].mean()), float(np.median(per_cell(flow)))]
    energy = a.mean(axis=(1, 2))
    out.append(float(energy[steps // 2:].sum() / max(energy.sum(), 1e-12)))
    return np.asarray(out)


def _features(sample_fn: Callable[[int, np.random.Generator], Sample], min_frames: int, heads: Sequence[str],
              featurize: Callable[[torch.Tensor], np.ndarray], residual: bool, paths: Sequence[str | Path],
              num_frames: Sequence[int], source: Any, *, crop_size: int, clips_per_video: int, seed: int,
              batch_size: int = 64) -> tuple[np.ndarray, dict[str, np.ndarray], list]:
    dataset = ClipDataset(paths, None, num_frames, source, sample_fn, seed=seed, min_frames=min_frames)
    keys = [(epoch, i) for epoch in range(clips_per_video) for i in range(len(dataset))]
    features, labels = [], {head: [] for head in heads}
    for start in range(0, len(keys), batch_size):
        batch = prepare_batch(collate([dataset[k] for k in keys[start : start + batch_size]]), crop_size=crop_size,
                              train=False, residual=residual)
        # several named clips (a playback-order tuple): their features side by side, in slot order
        features.append(np.concatenate([featurize(batch["clips"][n]) for n in sorted(batch["clips"])], axis=1))
        for head in heads:
            labels[head].append(batch["labels"][head].numpy())
    return np.concatenate(features), {h: np.concatenate(v) for h, v in labels.items()}, dataset.skipped


def motion_energy_probe(
    task_name: str,
    *,
    train: tuple[Sequence[str | Path], Sequence[int]],
    test: tuple[Sequence[str | Path], Sequence[int]],
    source: Any,
    clip_len: int = 8,
    crop_size: int = 56,
    train_clips_per_video: int = 8,
    test_clips_per_video: int = 4,
    seed: int = 0,
    **task_options: Any,
) -> dict[str, Any]:
    """Fit per head on `train` (paths, frame counts), score on `test`: accuracy, majority share, chance.

    The task always samples K + 1 frames (residual input): energy needs differences. Deterministic
    for a seed (the clips and the classifier's random state). `arrow-of-time` is built here (no task
    object): K + 1 raw frames at a stride drawn from `speeds` (default 1), `direction_features`.
    """
    if task_name == ARROW_OF_TIME:
        strides = tuple(task_options.pop("speeds", (1,)))
        if task_options or not strides or min(strides) < 1:
            raise ValueError(f"{ARROW_OF_TIME} takes only strides >= 1 (--speed-pool), got {task_options or strides}")
        aot = ArrowOfTimeTask(clip_len=clip_len + 1, speeds=tuple(sorted(set(strides))))  # labels from the plan
        head_classes = aot.heads
        setup = (aot.sample, aot.min_frames, tuple(head_classes), direction_features, False)
    else:
        task = make_task(task_name, clip_len=clip_len, extra_frames=1, **task_options)
        if not task.heads:
            raise ValueError(f"task {task_name!r} has no pretext labels to probe")
        head_classes = task.heads
        setup = (task.sample, task.min_frames, tuple(head_classes), motion_energy, True)
    x_train, y_train, skipped_train = _features(*setup, *train, source, crop_size=crop_size,
                                                clips_per_video=train_clips_per_video, seed=seed)
    x_test, y_test, skipped_test = _features(*setup, *test, source, crop_size=crop_size,
                                             clips_per_video=test_clips_per_video, seed=seed + 1)
    heads = {}
    for head, classes in head_classes.items():
        classifier = HistGradientBoostingClassifier(random_state=seed).fit(x_train, y_train[head])
        predicted = classifier.predict(x_test)
        truth = y_test[head]
        heads[head] = {"accuracy": float(np.mean(predicted == truth)),
                       "majority": float(np.bincount(truth, minlength=classes).max() / len(truth)),
                       "chance": 1.0 / classes}
    return {"task": task_name, "train_clips": len(x_train), "test_clips": len(x_test), "heads": heads,
            "skipped": [(str(p), r) for p, r in skipped_train + skipped_test]}
