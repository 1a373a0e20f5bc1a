"""Confusion matrices normalised per true class, class grouping, and the most confused pairs.

Row i of a normalised matrix is the distribution of predictions for videos of true class i, so
rows sum to 1. A class with no test videos has an all-zero row (not NaN), which keeps plots
and JSON simple; `row_counts` tells such rows apart from real zeros.
"""

from __future__ import annotations

import numpy as np


def confusion_counts(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Integer counts `cm[true, pred]`, shape (num_classes, num_classes)."""
    labels, predictions = np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} must be equal 1-D")
    for name, v in (("labels", labels), ("predictions", predictions)):
        if len(v) and (v.min() < 0 or v.max() >= num_classes):
            raise ValueError(f"{name} must lie in [0, {num_classes})")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (labels, predictions), 1)
    return cm


def normalise_rows(counts: np.ndarray) -> np.ndarray:
    """Divide each row by its total; rows with no samples stay all zero."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Row-normalised confusion matrix (rows = true class, sum to 1; empty rows are zeros)."""
    return normalise_rows(confusion_counts(labels, predictions, num_classes))


def group_confusion(
    counts: np.ndarray, class_names: list[str], groups: dict[str, list[str]]
) -> tuple[np.ndarray, list[str]]:
    """Aggregate a *count* matrix into groups of classes → `(group_counts, group_names)`.

    Each class may belong to at most one group; classes left out are collected in a final
    "other" group (omitted when empty). Normalise the result with `normalise_rows`. Grouping
    must happen on counts, not on normalised rows, or small classes would weigh as much as big ones.
    """
    counts = np.asarray(counts)
    if counts.shape != (len(class_names), len(class_names)):
        raise ValueError(f"counts {counts.shape} do not match {len(class_names)} class names")
    position = {name: i for i, name in enumerate(class_names)}
    assign = np.full(len(class_names), -1, dtype=np.int64)
    names = list(groups)
    for g, members in enumerate(groups.values()):
        for name in members:
            if name not in position:
                raise ValueError(f"group {names[g]!r} names unknown class {name!r}")
            if assign[position[name]] >= 0:
                raise ValueError(f"class {name!r} is in two groups: {names[assign[position[name]]]!r} and {names[g]!r}")
            assign[position[name]] = g
    if (assign < 0).any():
        if "other" in groups:
            raise ValueError("a group is called 'other' but some classes are not grouped")
        assign[assign < 0] = len(names)
        names.append("other")
    onehot = np.zeros((len(class_names), len(names)), dtype=counts.dtype)
    onehot[np.arange(len(class_names)), assign] = 1
    return onehot.T @ counts @ onehot, names


# Seed 001 Fig. 4.3: HMDB51's classes by the action types of Kuehne et al. 2011 (folder names;
# the thesis text says four groups, its caption lists these five).
HMDB51_GROUPS: dict[str, list[str]] = {
    "facial": ["smile", "laugh", "chew", "talk"],
    "facial+object": ["smoke", "eat", "drink"],
    "body": ["cartwheel", "clap", "climb", "climb_stairs", "dive", "fall_floor", "flic_flac", "handstand", "jump",
             "pullup", "pushup", "run", "sit", "situp", "somersault", "stand", "turn", "walk", "wave"],
    "body+object": ["brush_hair", "catch", "draw_sword", "dribble", "golf", "hit", "kick_ball", "pick", "pour",
                    "push", "ride_bike", "ride_horse", "shoot_ball", "shoot_bow", "shoot_gun", "swing_baseball",
                    "sword_exercise", "throw"],
    "interaction": ["fencing", "hug", "kick", "kiss", "punch", "shake_hands", "sword"],
}
# The synthetic set's stand-in: its classes by the kind of motion that decides them.
SYNTHETIC_GROUPS: dict[str, list[str]] = {
    "translation": ["MoveRight", "MoveLeft", "MoveUp", "MoveDown"],
    "rotation": ["RotateCW", "RotateCCW", "Orbit"],
    "scale": ["Approach", "Recede"],
    "speed profile": ["Accelerate", "Decelerate", "StopAndGo"],
    "path": ["Bounce", "Zigzag"],
}


def confusion_groups(class_names: list[str]) -> dict[str, list[str]] | None:
    """The grouping that fits a dataset's classes: HMDB51's five Kuehne groups or the synthetic
    set's five motion groups, when every class of the dataset is in it; else None."""
    for groups in (HMDB51_GROUPS, SYNTHETIC_GROUPS):
        members = {name for names in groups.values() for name in names}
        if set(class_names) == members:
            return groups
    return None


def most_confused_pairs(cm: np.ndarray, class_names: list[str], k: int = 10) -> list[tuple[str, str, float]]:
    """The k largest off-diagonal entries as `(true, predicted, value)`, largest first.

    Zero entries are never listed; ties go to the lower (true, predicted) index pair.
    """
    cm = np.asarray(cm, dtype=np.float64)
    if cm.shape != (len(class_names), len(class_names)):
        raise ValueError(f"matrix {cm.shape} does not match {len(class_names)} class names")
    off = cm.copy()
    np.fill_diagonal(off, 0.0)
    flat = off.ravel()
    order = np.argsort(-flat, kind="stable")
    n = len(class_names)
    return [(class_names[i // n], class_names[i % n], float(flat[i])) for i in order[:k] if flat[i] > 0]
