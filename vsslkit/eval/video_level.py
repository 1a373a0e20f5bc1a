"""Video-level accuracy of a fine-tuned classifier (seed 000 §3.5.1 inference protocol).

Ten uniformly spaced centre-cropped clips per test video; a video's prediction is the argmax
of its clips' *averaged softmax probabilities* (or averaged logits, when asked: some public
code does that and the numbers differ). Clip accuracy is reported next to it because the two
are often confused in papers. Every test video is scored (no drop_last).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from vsslkit.eval.confusion import confusion_counts, most_confused_pairs, normalise_rows
from vsslkit.eval.features import FrameSource, fitting_strides, iter_clip_batches
from vsslkit.eval.metrics import Averaging, aggregate_clips, clip_accuracy, per_class_accuracy, top_k_accuracy


def clip_logits(output: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
    """Class logits from a model output: a tensor, or the "class" entry of a heads dict."""
    if isinstance(output, dict):
        if "class" in output:
            return output["class"]
        if len(output) == 1:
            return next(iter(output.values()))
        raise ValueError(f"model returned heads {sorted(output)}; expected a 'class' head")
    return output


def evaluate_classifier(
    model: nn.Module,
    paths: Sequence[str | os.PathLike],
    labels: Sequence[int],
    frame_source: FrameSource,
    *,
    num_frames: Sequence[int],
    clip_len: int = 16,
    stride: int = 1,
    clips_per_video: int = 10,
    averaging: Averaging = "softmax",
    crop_size: int = 112,
    residual: bool = False,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    class_names: Sequence[str],
    top_k: int = 5,
) -> dict:
    """Clip and video accuracy, Hit@k, per-class accuracy, confusion and per-video predictions.

    Accuracies are fractions. `confusion` is row-normalised (true class rows), `confusion_counts`
    the raw counts; `predictions` lists `{"path", "label", "pred", "score"}` per video.
    """
    labels_arr = np.asarray(labels, dtype=np.int64)
    num_classes = len(class_names)
    if labels_arr.shape != (len(paths),):
        raise ValueError(f"{len(paths)} paths but {labels_arr.shape} labels")
    owners_all: list[np.ndarray] = []
    logits_all: list[np.ndarray] = []
    was_training = model.training
    model.eval().to(device)
    try:
        with torch.inference_mode():
            for owners, x in iter_clip_batches(
                paths, frame_source, num_frames, clip_len=clip_len, stride=stride,
                clips_per_video=clips_per_video, crop_size=crop_size, residual=residual,
                batch_size=batch_size, device=device,
            ):
                owners_all.append(owners)
                logits_all.append(clip_logits(model(x)).double().cpu().numpy())
    finally:
        model.train(was_training)
    owners = np.concatenate(owners_all)
    logits = np.concatenate(logits_all)
    if logits.shape[1] != num_classes:
        raise ValueError(f"model outputs {logits.shape[1]} classes but {num_classes} class names were given")
    ids, video_scores = aggregate_clips(logits, owners, mode=averaging)
    if not np.array_equal(ids, np.arange(len(paths))):
        raise RuntimeError("some videos produced no clips")  # cannot happen: short videos raise
    preds = video_scores.argmax(axis=1)
    counts = confusion_counts(labels_arr, preds, num_classes)
    per_class = per_class_accuracy(preds, labels_arr, num_classes)
    return {
        "clip_accuracy": clip_accuracy(logits, labels_arr[owners]),
        "video_accuracy": float(np.mean(preds == labels_arr)),
        f"hit_at_{top_k}": top_k_accuracy(video_scores, labels_arr, k=min(top_k, num_classes)),
        "mean_class_accuracy": float(np.nanmean(per_class)),
        "per_class_accuracy": {name: (None if np.isnan(a) else float(a)) for name, a in zip(class_names, per_class)},
        "confusion": normalise_rows(counts).tolist(),
        "confusion_counts": counts.tolist(),
        "class_names": list(class_names),
        "num_videos": len(paths),
        "num_clips": len(owners),
        "predictions": [
            {"path": str(p), "label": int(y), "pred": int(q), "score": float(s[q])}
            for p, y, q, s in zip(paths, labels_arr, preds, video_scores)
        ],
    }


def score_classifier_on(model, config, test, store, *, unreadable=(), clips_per_video: int = 10,
                        averaging: str = "softmax", batch_size: int = 8, device: Any = "cpu") -> dict[str, Any]:
    """The test protocol of `vsslkit finetune` and `vsslkit evaluate --classifier` (same numbers).

    `clips_per_video` uniformly spaced, centre-cropped clips per test video at the classifier's
    clip length, stride and input; clip scores averaged per video (`averaging`). No test video is
    dropped silently: one too short for the stride is scored at the largest stride that fits, one
    shorter than a stride-1 clip (or unreadable) is listed by name in `unscored_videos`.
    A test set that does not fit the classifier (other classes, no video long enough) raises
    `ValueError` naming it; the commands print that line.
    """
    if config.class_names and tuple(config.class_names) != tuple(test.class_names):
        raise ValueError(f"{test.root}: test classes {list(test.class_names)[:5]}… differ from the classifier's "
                         f"{list(config.class_names)[:5]}… (another dataset?)")
    if config.num_classes != test.num_classes:
        raise ValueError(f"{test.root}: {test.num_classes} test classes, the classifier has {config.num_classes}")
    strides = fitting_strides(test.num_frames, clip_len=config.clip_len, stride=config.stride,
                              residual=config.residual)
    unscored = [{"path": str(p), "reason": str(r)} for p, r in unreadable]
    unscored += [{"path": str(test.paths[i]), "reason": f"{test.num_frames[i]} frames: shorter than one test clip"}
                 for i, s in enumerate(strides) if s is None]
    reduced = [{"path": str(test.paths[i]), "frames": int(test.num_frames[i]), "stride": int(s)}
               for i, s in enumerate(strides) if s is not None and s != config.stride]
    keep = [i for i, s in enumerate(strides) if s is not None]
    if not keep:
        raise ValueError(f"{test.root}: no test video is long enough for one clip")
    scored = test.subset(keep)
    metrics = evaluate_classifier(model, scored.paths, scored.labels, store, num_frames=scored.num_frames,
                                  clip_len=config.clip_len, stride=[strides[i] for i in keep],
                                  clips_per_video=clips_per_video, averaging=averaging, crop_size=config.size,
                                  residual=config.residual, batch_size=batch_size, device=device,
                                  class_names=list(test.class_names))
    pairs = most_confused_pairs(metrics["confusion"], list(test.class_names), k=5)
    metrics["most_confused"] = [{"true": t, "predicted": q, "fraction": v} for t, q, v in pairs]
    metrics["test_videos"] = len(test) + len(unreadable)
    metrics["unscored_videos"] = unscored
    metrics["reduced_stride_videos"] = reduced
    return metrics
