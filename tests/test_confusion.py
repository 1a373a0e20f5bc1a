"""Row-normalised confusion matrices, grouping on counts, most confused pairs."""

import numpy as np
import pytest

from vsslkit.eval.confusion import (
    confusion_counts,
    confusion_matrix,
    group_confusion,
    most_confused_pairs,
    normalise_rows,
)


def test_rows_sum_to_one_and_empty_rows_are_zero():
    labels = np.array([0, 0, 0, 1, 1])
    preds = np.array([0, 1, 1, 1, 0])
    cm = confusion_matrix(labels, preds, num_classes=3)
    np.testing.assert_allclose(cm, [[1 / 3, 2 / 3, 0], [0.5, 0.5, 0], [0, 0, 0]])


def test_grouping_sums_counts_before_normalising():
    names = ["run", "walk", "eat", "drink"]
    counts = confusion_counts(np.array([0, 0, 0, 0, 1, 2, 3]), np.array([0, 1, 2, 2, 1, 3, 3]), 4)
    g, gnames = group_confusion(counts, names, {"body": ["run", "walk"], "face": ["eat", "drink"]})
    assert gnames == ["body", "face"]
    np.testing.assert_array_equal(g, [[3, 2], [0, 2]])
    np.testing.assert_allclose(normalise_rows(g), [[0.6, 0.4], [0, 1]])  # not mean of class rows


def test_grouping_collects_ungrouped_and_rejects_mistakes():
    names = ["a", "b", "c"]
    counts = np.eye(3, dtype=int)
    g, gnames = group_confusion(counts, names, {"first": ["a"]})
    assert gnames == ["first", "other"] and g.tolist() == [[1, 0], [0, 2]]
    with pytest.raises(ValueError, match="two groups"):
        group_confusion(counts, names, {"x": ["a"], "y": ["a"]})
    with pytest.raises(ValueError, match="unknown class 'z'"):
        group_confusion(counts, names, {"x": ["z"]})


def test_most_confused_pairs_order_and_ties():
    cm = np.array([[0.5, 0.2, 0.3], [0.3, 0.7, 0.0], [0.0, 0.0, 1.0]])
    pairs = most_confused_pairs(cm, ["a", "b", "c"], k=5)
    assert pairs == [("a", "c", 0.3), ("b", "a", 0.3), ("a", "b", 0.2)]


def test_seed001_groups_cover_their_datasets_exactly():
    from vsslkit.data.synthetic import CLASSES
    from vsslkit.eval.confusion import HMDB51_GROUPS, SYNTHETIC_GROUPS, confusion_groups, group_confusion

    hmdb = [name for names in HMDB51_GROUPS.values() for name in names]
    assert len(hmdb) == len(set(hmdb)) == 51
    assert [len(v) for v in HMDB51_GROUPS.values()] == [4, 3, 19, 18, 7]
    assert confusion_groups(list(CLASSES)) is SYNTHETIC_GROUPS
    assert confusion_groups(sorted(hmdb)) is HMDB51_GROUPS
    assert confusion_groups(["a", "b"]) is None
    # a MoveRight video predicted MoveLeft stays inside "translation"; one predicted Orbit leaves it
    counts = np.zeros((14, 14), dtype=np.int64)
    counts[0, 1] = 3
    counts[0, 13] = 1
    grouped, names = group_confusion(counts, list(CLASSES), SYNTHETIC_GROUPS)
    assert names == list(SYNTHETIC_GROUPS)
    assert grouped[0, 0] == 3 and grouped[0, 1] == 1 and grouped.sum() == 4
