"""Classification metrics on plain numpy arrays: clip vs video accuracy, Hit@k, per-class accuracy.

Peers' reproduction complaints are mostly about *which* accuracy a number is. So every function
here names its unit: a clip accuracy scores each clip on its own; a video accuracy first
aggregates the clips of a video (`aggregate_clips`) and scores one prediction per video.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Averaging = Literal["softmax", "logits"]


def softmax(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax (float64)."""
    z = np.asarray(scores, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _check_scores(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, labels = np.asarray(scores), np.asarray(labels)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (N, num_classes), got shape {scores.shape}")
    if labels.shape != (scores.shape[0],):
        raise ValueError(f"labels must be ({scores.shape[0]},), got shape {labels.shape}")
    if len(labels) == 0:
        raise ValueError("no samples to score")
    return scores, labels.astype(np.int64)


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of predictions equal to the labels."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape != labels.shape or predictions.ndim != 1 or len(labels) == 0:
        raise ValueError(f"predictions {predictions.shape} and labels {labels.shape} must be equal, non-empty 1-D")
    return float(np.mean(predictions == labels))


def clip_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy with every clip scored on its own (scores: (num_clips, C))."""
    scores, labels = _check_scores(scores, labels)
    return accuracy(scores.argmax(axis=1), labels)


def aggregate_clips(
    scores: np.ndarray, video_ids: np.ndarray, mode: Averaging = "softmax"
) -> tuple[np.ndarray, np.ndarray]:
    """Average the clip scores of each video → `(ids, video_scores)`.

    `mode="softmax"` (the default, as in seeds 000 §3.5.1 and 003 §5) averages per-clip softmax
    probabilities; `mode="logits"` averages raw logits (what some public code does; the argmax
    can differ when one clip is very confident). `ids` are the distinct video ids in order of
    first appearance, so `video_scores[i]` belongs to `ids[i]`.
    """
    scores = np.asarray(scores, dtype=np.float64)
    video_ids = np.asarray(video_ids)
    if scores.ndim != 2 or video_ids.shape != (scores.shape[0],):
        raise ValueError(f"scores {scores.shape} must be (N, C) and video_ids {video_ids.shape} (N,)")
    if mode == "softmax":
        values = softmax(scores, axis=1)
    elif mode == "logits":
        values = scores
    else:
        raise ValueError(f"mode must be 'softmax' or 'logits', got {mode!r}")
    uniq, first, inverse = np.unique(video_ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    group = rank[inverse.reshape(-1)]
    sums = np.zeros((len(uniq), scores.shape[1]))
    np.add.at(sums, group, values)
    counts = np.bincount(group, minlength=len(uniq)).astype(np.float64)
    return uniq[order], sums / counts[:, None]


def top_k_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Boolean per sample: is the label among the k highest scores (ties: lower class index first)."""
    scores, labels = _check_scores(scores, labels)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return (order == labels[:, None]).any(axis=1)


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Hit@k: fraction of samples whose label is among the k best-scored classes."""
    return float(np.mean(top_k_correct(scores, labels, k)))


def per_class_accuracy(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Accuracy of each true class, shape (num_classes,); NaN for a class with no samples."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions {predictions.shape} and labels {labels.shape} differ")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes})")
    total = np.bincount(labels, minlength=num_classes).astype(np.float64)
    correct = np.bincount(labels[predictions == labels], minlength=num_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, correct / np.maximum(total, 1), np.nan)


def mean_class_accuracy(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """Mean of the per-class accuracies over the classes that occur (balanced accuracy)."""
    acc = per_class_accuracy(predictions, labels, num_classes)
    if np.all(np.isnan(acc)):
        raise ValueError("no samples to score")
    return float(np.nanmean(acc))
