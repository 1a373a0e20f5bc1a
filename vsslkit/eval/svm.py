"""Linear-SVM transfer protocols of seed 003: dynamic scenes (§6.3) and action similarity (§6.4).

Both use frozen video-level features (clip features averaged, then L2-normalised, as in the
seed). Scaling is fitted inside each cross-validation fold (a StandardScaler in the pipeline),
so held-out samples never contribute statistics.

Pair distances (§6.4): the seed computes "12 different distances ... as described in [ASLAN]"
without listing them, and ASLAN's list includes learned scores (one-shot similarity) that need
a background set. We use 12 (dis)similarities that are exactly defined on a feature pair
(a, b) of L2-normalised vectors; non-negative variants use |a|, |b| (pooled ReLU features are
already non-negative, so |.| changes nothing there):

 1 dot           sum a*b
 2 cosine        a.b / (|a| |b|)          (equals dot for unit vectors unless a row was zero)
 3 l1            sum |a-b|
 4 l2            sqrt(sum (a-b)^2)
 5 sq_l2         sum (a-b)^2
 6 linf          max |a-b|
 7 chi2          sum (a-b)^2 / (|a|+|b|)  (terms with |a|+|b| = 0 count 0)
 8 hellinger     sqrt(sum (sqrt|a| - sqrt|b|)^2)
 9 intersection  sum min(|a|, |b|)
10 canberra      sum |a-b| / (|a|+|b|)    (terms with |a|+|b| = 0 count 0)
11 braycurtis    sum |a-b| / sum (|a|+|b|)
12 correlation   Pearson correlation of the entries of a and b
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.model_selection import GroupKFold, LeaveOneOut, StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

PAIR_DISTANCES = (
    "dot", "cosine", "l1", "l2", "sq_l2", "linf", "chi2", "hellinger", "intersection", "canberra",
    "braycurtis", "correlation",
)


def l2_normalise(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero); per-sample, so no fold leakage."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"features must be a non-empty (N, D) array, got shape {x.shape}")
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def linear_svm(C: float = 1.0, seed: int = 0):
    """StandardScaler + LinearSVC: the linear SVM both protocols use."""
    return make_pipeline(StandardScaler(), LinearSVC(C=C, dual="auto", max_iter=20000, random_state=seed))


def leave_one_out_svm(features: np.ndarray, labels: np.ndarray, *, C: float = 1.0, seed: int = 0) -> dict:
    """Dynamic-scene protocol (YUPENN, seed 003 §6.3): L2-normalise, linear SVM, leave-one-out.

    Returns `{"accuracy", "predictions", "num_samples"}`; every sample is predicted once by a
    model trained on all the others.
    """
    x = l2_normalise(features)
    y = np.asarray(labels)
    if y.shape != (len(x),):
        raise ValueError(f"labels shape {y.shape} does not match {len(x)} feature rows")
    if len(np.unique(y)) < 2:
        raise ValueError("leave-one-out SVM needs at least two classes")
    with warnings.catch_warnings():  # small evaluation sets trip sklearn's "looks like regression" hint
        warnings.filterwarnings("ignore", message="The number of unique classes is greater than 50%")
        pred = cross_val_predict(linear_svm(C, seed), x, y, cv=LeaveOneOut())
    return {"accuracy": float(np.mean(pred == y)), "predictions": pred, "num_samples": len(y)}


def linear_probe(train_features: np.ndarray, train_labels: Sequence[int], test_features: np.ndarray,
                 test_labels: Sequence[int], *, C: float = 1.0, seed: int = 0) -> dict:
    """Frozen-feature linear classification: L2-normalise, fit the linear SVM on the labelled
    training videos only, score every test video. Returns `{"accuracy", "predictions"}`.

    Why next to fine-tuning: with a few labelled videos, fine-tuning a whole 3D CNN mostly measures
    how it overfits; a linear read-out of the frozen features measures the representation itself
    (a random network's features give close to chance), at the cost of nothing but the features
    retrieval already extracted.
    """
    x_train, x_test = l2_normalise(train_features), l2_normalise(test_features)
    y_train, y_test = np.asarray(train_labels), np.asarray(test_labels)
    if y_train.shape != (len(x_train),) or y_test.shape != (len(x_test),):
        raise ValueError(f"{len(y_train)}/{len(y_test)} labels for {len(x_train)}/{len(x_test)} feature rows")
    if len(np.unique(y_train)) < 2:
        raise ValueError("a linear probe needs labelled videos of at least two classes")
    with warnings.catch_warnings():  # few labelled videos per class trip sklearn's regression hint
        warnings.filterwarnings("ignore", message="The number of unique classes is greater than 50%")
        predictions = linear_svm(C, seed).fit(x_train, y_train).predict(x_test)
    return {"accuracy": float(np.mean(predictions == y_test)), "predictions": predictions}


def pair_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The 12 (dis)similarities of the module docstring for each row pair → (N, 12).

    Rows are L2-normalised first (seed 003 §6.4).
    """
    a, b = l2_normalise(a), l2_normalise(b)
    if a.shape != b.shape:
        raise ValueError(f"pair features must have equal shapes, got {a.shape} and {b.shape}")
    aa, ab = np.abs(a), np.abs(b)
    diff = a - b
    adiff = np.abs(diff)
    total = aa + ab
    safe = np.where(total > 0, total, 1.0)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = (a * b).sum(1)
    ca, cb = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    cden = np.linalg.norm(ca, axis=1) * np.linalg.norm(cb, axis=1)
    cols = [
        dot,
        np.divide(dot, na * nb, out=np.zeros_like(dot), where=na * nb > 0),
        adiff.sum(1),
        np.sqrt((diff**2).sum(1)),
        (diff**2).sum(1),
        adiff.max(1),
        np.where(total > 0, diff**2 / safe, 0.0).sum(1),
        np.sqrt(((np.sqrt(aa) - np.sqrt(ab)) ** 2).sum(1)),
        np.minimum(aa, ab).sum(1),
        np.where(total > 0, adiff / safe, 0.0).sum(1),
        np.divide(adiff.sum(1), total.sum(1), out=np.zeros(len(a)), where=total.sum(1) > 0),
        np.divide((ca * cb).sum(1), cden, out=np.zeros(len(a)), where=cden > 0),
    ]
    return np.stack(cols, axis=1)


def make_pairs(labels: np.ndarray, n_pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced distinct pairs `(idx_a, idx_b, same)`: n_pairs // 2 same-class, the rest different.

    Pairs are unordered and never repeat (nor pair a video with itself). Raises when the labels
    cannot supply that many distinct pairs of either kind.
    """
    labels = np.asarray(labels)
    n_same, n_diff = n_pairs // 2, n_pairs - n_pairs // 2
    classes, counts = np.unique(labels, return_counts=True)
    members = {c: np.flatnonzero(labels == c) for c in classes}
    possible_same = int((counts * (counts - 1) // 2).sum())
    possible_diff = len(labels) * (len(labels) - 1) // 2 - possible_same
    if n_pairs < 2 or n_same > possible_same or n_diff > possible_diff:
        raise ValueError(
            f"cannot make {n_pairs} balanced pairs: {possible_same} same-class and {possible_diff} "
            f"different-class pairs exist"
        )
    weights = (counts * (counts - 1) / 2) / max(possible_same, 1)
    chosen: set[tuple[int, int]] = set()
    pairs: list[tuple[int, int, bool]] = []

    def take(i: int, j: int, same: bool) -> None:
        key = (min(i, j), max(i, j))
        if i != j and key not in chosen:
            chosen.add(key)
            pairs.append((key[0], key[1], same))

    # Rejection sampling with a fallback to exhaustive enumeration when the pool is nearly used up.
    for want_same, target in ((True, n_same), (False, n_diff)):
        start = len(pairs)
        for _ in range(20 * target + 100):
            if len(pairs) - start >= target:
                break
            if want_same:
                c = classes[rng.choice(len(classes), p=weights)]
                i, j = rng.choice(members[c], size=2, replace=False)
            else:
                i, j = rng.integers(0, len(labels), size=2)
                if labels[i] == labels[j]:
                    continue
            take(int(i), int(j), want_same)
        if len(pairs) - start < target:
            rest = [
                (i, j) for i in range(len(labels)) for j in range(i + 1, len(labels))
                if (labels[i] == labels[j]) == want_same and (i, j) not in chosen
            ]
            for k in rng.permutation(len(rest))[: target - (len(pairs) - start)]:
                take(*rest[k], want_same)
    arr = np.array(pairs, dtype=np.int64)
    order = rng.permutation(len(arr))
    return arr[order, 0], arr[order, 1], arr[order, 2].astype(bool)


def pair_similarity_svm(
    features_a: np.ndarray | Mapping[str, np.ndarray] | Sequence[np.ndarray],
    features_b: np.ndarray | Mapping[str, np.ndarray] | Sequence[np.ndarray],
    same_labels: np.ndarray,
    groups: np.ndarray | None = None,
    n_folds: int = 10,
    *,
    C: float = 1.0,
    seed: int = 0,
) -> dict:
    """Action-similarity protocol (ASLAN, seed 003 §6.4): same/not-same accuracy, 10-fold CV.

    `features_a[i]` and `features_b[i]` are the two videos of pair i. Pass one array per
    feature type (e.g. a dict {"pool3": …, "pool4": …, "pool5": …}) to get 12 distances per
    type (36 for three layers). Distances are z-normalised inside each fold and fed to a linear
    SVM. With `groups` (e.g. the action class of a pair) folds never share a group, as ASLAN
    tests on never-seen actions; otherwise folds are stratified by `same_labels` with `seed`.
    Returns `{"accuracy_mean", "accuracy_std", "fold_accuracies", "num_pairs", "num_distances"}`.
    """
    types_a = _feature_types(features_a)
    types_b = _feature_types(features_b)
    if len(types_a) != len(types_b):
        raise ValueError(f"{len(types_a)} feature types for side a but {len(types_b)} for side b")
    x = np.concatenate([pair_distances(a, b) for a, b in zip(types_a, types_b)], axis=1)
    y = np.asarray(same_labels).astype(np.int64)
    if y.shape != (len(x),):
        raise ValueError(f"same_labels shape {y.shape} does not match {len(x)} pairs")
    if groups is not None:
        splits = GroupKFold(n_splits=n_folds).split(x, y, groups=np.asarray(groups))
    else:
        splits = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(x, y)
    accs = []
    for train, test in splits:
        if len(np.unique(y[train])) < 2:
            raise ValueError("a training fold holds only one kind of pair; use more pairs or fewer folds")
        model = linear_svm(C, seed).fit(x[train], y[train])
        accs.append(float(np.mean(model.predict(x[test]) == y[test])))
    return {
        "accuracy_mean": float(np.mean(accs)),
        "accuracy_std": float(np.std(accs)),
        "fold_accuracies": accs,
        "num_pairs": len(y),
        "num_distances": int(x.shape[1]),
    }


def _feature_types(features) -> list[np.ndarray]:
    if isinstance(features, Mapping):
        return [np.asarray(v) for v in features.values()]
    if isinstance(features, np.ndarray):
        return [features]
    return [np.asarray(v) for v in features]
