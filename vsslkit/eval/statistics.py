"""Held-out scores of seed 003's statistics task: per label, the network against the label's
majority rate and against a network-free probe.

`labelled_clips` draws seeded stride-1 clips of held-out videos through the training data path
(`ClipDataset` with the flow cache, `collate`, the eval `prepare_batch`: centre crop of frames and
flow) and computes their 27 labels exactly as training does (`task.pixel_labels`).
`heldout_scores` adds the model's predictions. `block_energy_probe` is the floor a network must
beat on the location labels (SPECS §2.5): gradient boosting on hand-made per-block features of
the same centre-cropped clips (per pattern-1 block: the mean |frame difference| and the mean
|horizontal| and |vertical| image gradient of that difference), fitted on training-video clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsslkit.data.clips import BatchPreparer, ClipDataset, collate
from vsslkit.data.transforms import residual_frames
from vsslkit.plans import IGNORE_INDEX
from vsslkit.tasks.statistics import StatisticsTask, to_uint8_frames
from vsslkit.tasks.statistics_labels import LABELS, MOTION_LABELS, decode_regression, num_classes


@dataclass
class LabelledClips:
    """Clips' uint8 frames (only when kept), their labels `{name: (n,)}` and their video index."""

    labels: dict[str, np.ndarray]
    video: np.ndarray
    features: np.ndarray | None = None  # block-energy probe features
    predicted: dict[str, np.ndarray] | None = None


def labelled_clips(task: StatisticsTask, source: Any, flow: Any, paths: Sequence[str | Path],
                   num_frames: Sequence[int], *, crop_size: int, clips_per_video: int = 4, seed: int = 0,
                   batch_size: int = 32, model: torch.nn.Module | None = None, probe_features: bool = False,
                   device: str | torch.device = "cpu", residual: bool = False) -> LabelledClips:
    """Labels of `clips_per_video` seeded clips per video (+ predictions of `model`, a `PretextModel`).

    `residual`: the model was trained on frame differences (its task reads one extra frame); it is
    fed the differences of the same RGB clip the labels and the probe features come from.
    """
    data = ClipDataset(paths, None, num_frames, source, task.sample, seed=seed, min_frames=task.min_frames,
                       flow=flow, flow_clips=task.flow_clips)
    keys = [(e, i) for e in range(clips_per_video) for i in range(len(data))]
    prepare = BatchPreparer(crop_size=crop_size, flip=False, seed=seed)
    labels: dict[str, list[np.ndarray]] = {n: [] for n in task.labels}  # a label-group ablation: its labels only
    predicted: dict[str, list[np.ndarray]] = {n: [] for n in task.labels}
    videos, features = [], []
    if model is not None:
        was_training = model.training
        model.eval()
    try:
        for start in range(0, len(keys), batch_size):
            raw = collate([data[k] for k in keys[start : start + batch_size]])
            batch = prepare(raw, step=0, train=False)
            own = task.pixel_labels(batch["clips"], {}, batch["augment"])
            for n in task.labels:
                labels[n].append(own[n].cpu().numpy())
            videos.append(raw["video"].numpy())
            if probe_features:
                features.append(block_energy(to_uint8_frames(batch["clips"]["clip"])))
            if model is not None:
                clip = batch["clips"]["clip"]
                with torch.inference_mode():
                    out = model.predict((residual_frames(clip) if residual else clip).to(device))
                for n, v in _predictions(task, out).items():
                    if n in predicted:
                        predicted[n].append(v)
    finally:
        if model is not None:
            model.train(was_training)
    return LabelledClips({n: np.concatenate(v) for n, v in labels.items()}, np.concatenate(videos),
                         np.concatenate(features) if probe_features else None,
                         {n: np.concatenate(v) for n, v in predicted.items()} if model is not None else None)


def _predictions(task: StatisticsTask, out: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    if task.targets == "classification":
        return {n: out[n].argmax(1).cpu().numpy() for n in task.heads}
    return decode_regression(out["motion"].float().cpu().numpy(), out["appearance"].float().cpu().numpy(),
                             two_d=task.targets == "2d", clip_len=task.clip_len)


def block_energy(frames: np.ndarray) -> np.ndarray:
    """uint8 `(B, N, S, S, 3)` → `(B, 48)`: per pattern-1 block (4x4 grid) the mean |frame
    difference| and the mean |d/dx| and |d/dy| of the difference (where motion edges are)."""
    grey = frames.astype(np.float32).mean(-1)  # (B, N, S, S)
    diff = np.abs(np.diff(grey, axis=1)).mean(1)  # (B, S, S)
    signed = np.diff(grey, axis=1)
    gx = np.abs(np.diff(signed, axis=3, append=signed[..., -1:])).mean(1)
    gy = np.abs(np.diff(signed, axis=2, append=signed[..., -1:, :])).mean(1)
    b, s = diff.shape[0], diff.shape[-1]
    q = s // 4
    cells = [m.reshape(b, 4, q, 4, q).mean(axis=(2, 4)).reshape(b, 16) for m in (diff, gx, gy)]
    return np.concatenate(cells, axis=1)


@dataclass(frozen=True)
class LabelScore:
    label: str
    classes: int
    clips: int  # clips where the label is defined
    accuracy: float
    majority: float  # share of the most frequent label among those clips
    probe: float | None = None


def score_labels(clips: LabelledClips, task: StatisticsTask, *, probe: dict[str, float] | None = None) -> list[LabelScore]:
    """Per label: accuracy of the predictions, the majority rate on the same clips (and the probe's)."""
    n = num_classes(task.input_frames)  # labels are computed on the frames read
    rows = []
    for name in task.labels:
        truth = clips.labels[name]
        keep = truth != IGNORE_INDEX
        if not keep.any():
            continue
        counts = np.bincount(truth[keep], minlength=n[name])
        acc = float(np.mean(clips.predicted[name][keep] == truth[keep])) if clips.predicted is not None else float("nan")
        rows.append(LabelScore(name, n[name], int(keep.sum()), acc, float(counts.max() / keep.sum()),
                               None if probe is None else probe.get(name)))
    return rows


def block_energy_probe(train: LabelledClips, test: LabelledClips, labels: Sequence[str] = ("m1_pu", "m1_pv"),
                       *, seed: int = 0) -> dict[str, float]:
    """Held-out accuracy of gradient boosting on `block_energy` features, per label."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    out = {}
    for name in labels:
        fit = train.labels[name] != IGNORE_INDEX
        use = test.labels[name] != IGNORE_INDEX
        model = HistGradientBoostingClassifier(max_iter=200, random_state=seed)
        model.fit(train.features[fit], train.labels[name][fit])
        out[name] = float(np.mean(model.predict(test.features[use]) == test.labels[name][use]))
    return out


def scores_markdown(rows: Sequence[LabelScore]) -> str:
    """Per-label table (percent) plus the means the acceptance compares: motion accuracy vs majority."""
    lines = ["| label | classes | clips | accuracy | majority | probe |", "|---|---|---|---|---|---|"]
    for r in rows:
        probe = "" if r.probe is None else f"{100 * r.probe:.1f} %"
        lines.append(f"| {r.label} | {r.classes} | {r.clips} | {100 * r.accuracy:.1f} % | {100 * r.majority:.1f} % | {probe} |")
    for group, names in (("motion", MOTION_LABELS), ("appearance", tuple(n for n in LABELS if n not in MOTION_LABELS))):
        sel = [r for r in rows if r.label in names]
        if sel:
            lines.append(f"| **mean {group}** | | | {100 * np.mean([r.accuracy for r in sel]):.1f} % | "
                         f"{100 * np.mean([r.majority for r in sel]):.1f} % | |")
    return "\n".join(lines)


def heldout_reading(rows: Sequence[LabelScore], *, name: str = "the network") -> list[str]:
    """Sentences a notebook prints from the scores: whether the mean motion (appearance) accuracy is above
    the mean majority rate, how many labels beat their own majority rate, and the probe comparison."""
    out = []
    for group, sel in (("motion", [r for r in rows if r.label in MOTION_LABELS]),
                       ("appearance", [r for r in rows if r.label not in MOTION_LABELS])):
        if not sel:
            continue
        acc, maj = 100 * float(np.mean([r.accuracy for r in sel])), 100 * float(np.mean([r.majority for r in sel]))
        above = sum(r.accuracy > r.majority for r in sel)
        verdict = "above" if acc > maj else "not above"
        out.append(f"{name}: {group} labels are {verdict} their majority rate on average ({acc:.1f} % vs "
                   f"{maj:.1f} %); {above} of {len(sel)} {group} labels beat their own majority rate.")
    for r in rows:
        if r.probe is not None:
            verdict = "beats" if r.accuracy > r.probe else "does not beat"
            out.append(f"{name} {verdict} the network-free probe on {r.label} ({100 * r.accuracy:.1f} % vs "
                       f"{100 * r.probe:.1f} %; majority {100 * r.majority:.1f} %).")
    return out
