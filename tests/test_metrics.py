"""Metrics against hand-computed references on tiny arrays."""

import numpy as np
import pytest

from vsslkit.eval.metrics import (
    aggregate_clips,
    clip_accuracy,
    mean_class_accuracy,
    per_class_accuracy,
    softmax,
    top_k_accuracy,
)


def test_clip_accuracy_counts_every_clip():
    scores = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]])
    assert clip_accuracy(scores, np.array([0, 1, 1])) == pytest.approx(2 / 3)


def test_softmax_and_logit_averaging_disagree_by_hand():
    # Video 7: clip A is very confident in class 0, clips B and C mildly prefer class 1.
    scores = np.array([[10.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 2.0]])
    ids = np.array([7, 7, 7, 3])
    ids_s, soft = aggregate_clips(scores, ids)  # softmax is the default
    ids_l, logit = aggregate_clips(scores, ids, mode="logits")
    assert ids_s.tolist() == [7, 3] and ids_l.tolist() == [7, 3]  # order of first appearance
    p_a = softmax(np.array([10.0, 0.0]))
    p_b = softmax(np.array([0.0, 1.0]))
    np.testing.assert_allclose(soft[0], (p_a + 2 * p_b) / 3)
    np.testing.assert_allclose(logit[0], [10 / 3, 2 / 3])
    # mean probs: class 0 = (0.99995 + 2*0.2689)/3 = 0.512 -> class 0; logits also class 0 here,
    assert soft[0].argmax() == 0 and logit[0].argmax() == 0
    # ... but with a weaker outlier the two rules split: softmax -> 1, logits -> 0.
    s2 = np.array([[4.0, 0.0], [0.0, 1.5], [0.0, 1.5]])
    _, soft2 = aggregate_clips(s2, np.zeros(3))
    _, logit2 = aggregate_clips(s2, np.zeros(3), mode="logits")
    assert logit2[0].tolist() == pytest.approx([4 / 3, 1.0])
    assert soft2[0].argmax() == 1 and logit2[0].argmax() == 0


def test_aggregate_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        aggregate_clips(np.zeros((2, 2)), np.zeros(2), mode="mean")


def test_top_k_with_ties_prefers_lower_class():
    scores = np.array([[1.0, 1.0, 0.0], [0.0, 0.5, 0.9], [0.2, 0.1, 0.3]])
    labels = np.array([1, 0, 0])
    # row 0: top-1 is class 0 (tie broken by index) -> miss at k=1, hit at k=2
    assert top_k_accuracy(scores, labels, k=1) == pytest.approx(0.0)
    assert top_k_accuracy(scores, labels, k=2) == pytest.approx(2 / 3)
    assert top_k_accuracy(scores, labels, k=3) == pytest.approx(1.0)


def test_per_class_and_mean_class_accuracy():
    labels = np.array([0, 0, 0, 0, 1, 2, 2])
    preds = np.array([0, 0, 0, 1, 0, 2, 1])
    acc = per_class_accuracy(preds, labels, num_classes=4)
    np.testing.assert_allclose(acc[:3], [0.75, 0.0, 0.5])
    assert np.isnan(acc[3])
    assert mean_class_accuracy(preds, labels, 4) == pytest.approx((0.75 + 0 + 0.5) / 3)
