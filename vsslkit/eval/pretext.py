"""Held-out pretext accuracy: draw a checkpoint's own task on unseen videos, predict, summarise.

Behind `vsslkit pretext-eval` and notebooks 02/03 (their explorers in `vsslkit.viz.explorers` draw
what these return). Plain values in, plain numbers out: `predict_pretext_clips` gives one
`PretextClip` (plan, truth, prediction) per drawn clip; `localization_summary` gives per head the
confusion counts, accuracy, majority share and chance; `label_names` the readable names of a
head's labels; `change_error` how far the location head is off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsslkit.data.transforms import center_crop, residual_frames, to_float_clips
from vsslkit.eval.confusion import confusion_counts
from vsslkit.eval.features import FrameSource
from vsslkit.tasks import label_name, primary_task


def base_task(task: Any) -> Any:
    """The pretext task itself: a `Joint`'s first branch (the one MoCo regularises), any other task unchanged."""
    return primary_task(task)


@dataclass(frozen=True)
class PretextClip:
    """One held-out clip drawn by the task: what the sampler chose and what the model answered."""

    video: int
    path: str
    num_frames: int
    plan: Any  # vsslkit.plans.Plan of a one-clip task; None for a multi-clip sample (see `plans`)
    labels: dict[str, int]  # ground truth per head
    predicted: dict[str, int]
    confidence: dict[str, float]  # softmax probability of the predicted label
    plans: dict[str, Any] | None = None  # every named plan of the sample (playback order: clip0..clipN)


def label_names(task: Any, head: str) -> list[str]:
    """Readable names of a head's labels, from the task's own `label_name` ("m=5" / "constant"
    for loc, "(r1,r2)" or "p=2" for speed, "forward" / "backward" for direction)."""
    task = base_task(task)
    if head not in task.heads:
        raise KeyError(f"task {task.name} has no head {head!r}; heads: {sorted(task.heads)}")
    return [label_name(task, head, label) for label in range(task.heads[head])]


def _clip_tensor(frames: np.ndarray, crop_size: int, residual: bool) -> torch.Tensor:
    x = to_float_clips(center_crop(torch.from_numpy(np.ascontiguousarray(frames))[None], crop_size))
    return residual_frames(x) if residual else x


def _single_plan(plans: Mapping[str, Any]) -> Any:
    """The plan of a one-clip sample (as `Sample.plan`), None for a multi-clip one."""
    if "clip" in plans:
        return plans["clip"]
    return next(iter(plans.values())) if len(plans) == 1 else None


def predict_pretext_clips(model: torch.nn.Module, source: FrameSource, paths: Sequence[str | Path],
                          num_frames: Sequence[int], *, crop_size: int, clips_per_video: int = 4, seed: int = 0,
                          batch_size: int = 16) -> list[PretextClip]:
    """Draw `clips_per_video` clips per video with the model's own task sampler (seeded), run the
    pretext model on their centre crops and return truth + prediction per clip.

    `model` is a `PretextModel` (its `.task` decides plans and residual input). Videos shorter
    than the task's `min_frames` are skipped, as in training. Use held-out (test-split) videos.
    """
    task = base_task(model.task)
    residual = task.extra_frames == 1
    rng = np.random.default_rng(seed)
    drawn = []
    for vi, (path, n) in enumerate(zip(paths, num_frames)):
        if int(n) < task.min_frames:
            continue
        for _ in range(clips_per_video):
            sample = task.sample(int(n), rng)
            drawn.append((vi, str(path), int(n), dict(sample.plans), dict(sample.labels)))
    if not drawn:
        raise ValueError(f"no video has the {task.min_frames} frames task {task.name} needs")
    out: list[PretextClip] = []
    device = next(model.parameters()).device  # clips go where the model is (CPU or CUDA)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for b in range(0, len(drawn), batch_size):
                chunk = drawn[b : b + batch_size]
                x = {name: torch.cat([_clip_tensor(np.asarray(source.read(p, plans[name].indices)), crop_size, residual)
                                      for _, p, _, plans, _ in chunk]).to(device) for name in chunk[0][3]}
                outputs = model.predict(x["clip"] if list(x) == ["clip"] else x)
                probs = {head: torch.softmax(outputs[head].double(), dim=1).cpu().numpy() for head in task.heads}
                for i, (vi, p, n, plans, labels) in enumerate(chunk):
                    pred = {head: int(probs[head][i].argmax()) for head in task.heads}
                    conf = {head: float(probs[head][i].max()) for head in task.heads}
                    out.append(PretextClip(vi, p, n, _single_plan(plans), labels, pred, conf, plans))
    finally:
        model.train(was_training)
    return out


@dataclass(frozen=True)
class HeadSummary:
    head: str
    names: list[str]
    counts: np.ndarray  # confusion counts [true, predicted]
    accuracy: float
    majority: float  # share of the most frequent true label among these clips
    chance: float
    ceiling: float | None = None  # best possible accuracy on time-symmetric data (None: not derived)


def time_symmetric_data(root: str | Path) -> bool:
    """True for a synthetic set of generator version 2, whose films look the same played backwards."""
    from vsslkit.data.synthetic import load_metadata

    if not (Path(root) / "synthetic.json").is_file():
        return False
    return int(load_metadata(root)["request"].get("generator_version", 2)) <= 2


def localization_summary(clips: Sequence[PretextClip], task: Any, *,
                         time_symmetric: bool = False) -> dict[str, HeadSummary]:
    """Per head: confusion counts, accuracy, majority-class share and chance on the given clips;
    with `time_symmetric`, also the task's theoretical ceiling on such data (where it defines one)."""
    if not clips:
        raise ValueError("no clips to summarise")
    task = base_task(task)
    out = {}
    for head, n in task.heads.items():
        truth = np.array([c.labels[head] for c in clips])
        pred = np.array([c.predicted[head] for c in clips])
        counts = confusion_counts(truth, pred, n)
        ceiling = task.ceiling(head, time_symmetric=True) if time_symmetric and hasattr(task, "ceiling") else None
        out[head] = HeadSummary(head, label_names(task, head), counts, float(np.mean(truth == pred)),
                                float(np.bincount(truth, minlength=n).max() / len(truth)), 1.0 / n, ceiling)
    return out


def summary_markdown(summary: Mapping[str, HeadSummary]) -> str:
    """Accuracy vs majority/chance per head, markdown (percent)."""
    ceiling = any(s.ceiling is not None for s in summary.values())
    lines = ["| head | classes | accuracy | majority label | chance |" + (" ceiling (time-symmetric data) |" if ceiling else ""),
             "|---|---|---|---|---|" + ("---|" if ceiling else "")]
    for s in summary.values():
        line = f"| {s.head} | {len(s.names)} | {100 * s.accuracy:.1f} % | {100 * s.majority:.1f} % | {100 * s.chance:.1f} % |"
        if ceiling:
            line += " – |" if s.ceiling is None else f" {100 * s.ceiling:.1f} % |"
        lines.append(line)
    return "\n".join(lines)


def change_error(clips: Sequence[PretextClip], task: Any) -> dict[str, float]:
    """On clips with a true change: how often "no change" is predicted, and the mean |m̂ − m| in clip
    frames when a change is predicted (how far off the location head is)."""
    task = base_task(task)
    changing = [c for c in clips if c.labels["loc"] != task.dummy_loc]
    located = [c for c in changing if c.predicted["loc"] != task.dummy_loc]
    offsets = [abs(task.locations[c.predicted["loc"]] - task.locations[c.labels["loc"]]) for c in located]
    return {"changing_clips": len(changing),
            "missed_change": (len(changing) - len(located)) / len(changing) if changing else float("nan"),
            "mean_offset": float(np.mean(offsets)) if offsets else float("nan")}
