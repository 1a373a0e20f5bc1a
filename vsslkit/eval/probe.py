"""A network-free probe: can hand-made motion energy solve a pretext task on this data?

Before blaming a model for a pretext head stuck at chance, ask whether the data shows the signal
at all. For speed tasks the signal is how far things move per sampled step, and the simplest
measurement of it is the mean absolute residual (frame difference) of every clip element. A
gradient-boosted classifier on that profile, fitted on clips of the training videos and scored on
clips of other videos, gives a floor for what a network should reach; near chance means the data
hides the signal (this found the white camera jitter of synthetic set version 1, see
docs/results/pretext.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier

from vsslkit.data.clips import ClipDataset, collate, prepare_batch
from vsslkit.tasks import make_task


def motion_energy(clips: torch.Tensor) -> np.ndarray:
    """Residual clips `(B, C, T, H, W)` -> `(B, 2T)`: mean |residual| per element, then that profile
    divided by its clip mean (so a change shows as a step whatever the scene's contrast)."""
    if clips.dim() != 5:
        raise ValueError(f"expected clips (B, C, T, H, W), got shape {tuple(clips.shape)}")
    energy = clips.abs().mean(dim=(1, 3, 4))
    profile = energy / energy.mean(dim=1, keepdim=True).clamp_min(1e-8)
    return torch.cat([energy, profile], dim=1).numpy()


def _features(task: Any, paths: Sequence[str | Path], num_frames: Sequence[int], source: Any, *, crop_size: int,
              clips_per_video: int, seed: int, batch_size: int = 64) -> tuple[np.ndarray, dict[str, np.ndarray], list]:
    dataset = ClipDataset(paths, None, num_frames, source, task.sample, seed=seed, min_frames=task.min_frames)
    keys = [(epoch, i) for epoch in range(clips_per_video) for i in range(len(dataset))]
    features, labels = [], {head: [] for head in task.heads}
    for start in range(0, len(keys), batch_size):
        batch = prepare_batch(collate([dataset[k] for k in keys[start : start + batch_size]]), crop_size=crop_size,
                              train=False, residual=True)
        features.append(motion_energy(batch["clips"]["clip"]))
        for head in task.heads:
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
    for a seed (the clips and the classifier's random state).
    """
    task = make_task(task_name, clip_len=clip_len, extra_frames=1, **task_options)
    if not task.heads:
        raise ValueError(f"task {task_name!r} has no pretext labels to probe")
    x_train, y_train, skipped_train = _features(task, *train, source, crop_size=crop_size,
                                                clips_per_video=train_clips_per_video, seed=seed)
    x_test, y_test, skipped_test = _features(task, *test, source, crop_size=crop_size,
                                             clips_per_video=test_clips_per_video, seed=seed + 1)
    heads = {}
    for head, classes in task.heads.items():
        classifier = HistGradientBoostingClassifier(random_state=seed).fit(x_train, y_train[head])
        predicted = classifier.predict(x_test)
        truth = y_test[head]
        heads[head] = {"accuracy": float(np.mean(predicted == truth)),
                       "majority": float(np.bincount(truth, minlength=classes).max() / len(truth)),
                       "chance": 1.0 / classes}
    return {"task": task_name, "train_clips": len(x_train), "test_clips": len(x_test), "heads": heads,
            "skipped": [(str(p), r) for p, r in skipped_train + skipped_test]}
