"""SVM protocols: separable toy data -> 1.0, random data -> about chance; pair distances by hand."""

import numpy as np
import pytest

from vsslkit.eval.svm import (
    PAIR_DISTANCES,
    leave_one_out_svm,
    linear_probe,
    make_pairs,
    pair_distances,
    pair_similarity_svm,
)


def _blobs(rng, n_per_class=8, classes=3, dim=6, spread=0.05):
    centres = np.eye(classes, dim) * 5 + 1
    x = np.concatenate([c + spread * rng.normal(size=(n_per_class, dim)) for c in centres])
    return x, np.repeat(np.arange(classes), n_per_class)


def test_leave_one_out_separable_is_perfect():
    x, y = _blobs(np.random.default_rng(0))
    out = leave_one_out_svm(x, y)
    assert out["accuracy"] == 1.0 and out["num_samples"] == 24 and len(out["predictions"]) == 24


def test_leave_one_out_random_is_near_chance():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(60, 20)), np.repeat(np.arange(3), 20)
    assert leave_one_out_svm(x, y)["accuracy"] < 0.6  # chance 1/3


def test_pair_distances_by_hand():
    a = np.array([[3.0, 4.0, 0.0]])  # unit: (.6, .8, 0)
    b = np.array([[0.0, 1.0, 0.0]])
    d = dict(zip(PAIR_DISTANCES, pair_distances(a, b)[0]))
    assert len(PAIR_DISTANCES) == 12
    assert d["dot"] == pytest.approx(0.8) and d["cosine"] == pytest.approx(0.8)
    assert d["l1"] == pytest.approx(0.8) and d["sq_l2"] == pytest.approx(0.4)
    assert d["l2"] == pytest.approx(np.sqrt(0.4)) and d["linf"] == pytest.approx(0.6)
    assert d["chi2"] == pytest.approx(0.36 / 0.6 + 0.04 / 1.8)
    assert d["hellinger"] == pytest.approx(np.sqrt(0.6 + (np.sqrt(0.8) - 1) ** 2))
    assert d["intersection"] == pytest.approx(0.8)
    assert d["canberra"] == pytest.approx(1 + 0.2 / 1.8)
    assert d["braycurtis"] == pytest.approx(0.8 / 2.4)
    assert d["correlation"] == pytest.approx(np.corrcoef([0.6, 0.8, 0], [0, 1, 0])[0, 1])


def test_make_pairs_balanced_distinct():
    labels = np.repeat(np.arange(4), 5)
    ia, ib, same = make_pairs(labels, 40, np.random.default_rng(0))
    assert len(ia) == 40 and same.sum() == 20
    assert ((labels[ia] == labels[ib]) == same).all() and (ia != ib).all()
    assert len({(min(i, j), max(i, j)) for i, j in zip(ia, ib)}) == 40
    # only 4 * C(5,2) = 40 same pairs exist: asking for 40 same-class pairs must still work
    _, _, same = make_pairs(labels, 80, np.random.default_rng(1))
    assert same.sum() == 40
    with pytest.raises(ValueError, match="cannot make"):
        make_pairs(labels, 82, np.random.default_rng(0))


def test_pair_similarity_separable_and_random():
    rng = np.random.default_rng(0)
    x, y = _blobs(rng, n_per_class=10, classes=6, dim=12, spread=0.02)
    ia, ib, same = make_pairs(y, 120, rng)
    out = pair_similarity_svm({"pool4": x[ia], "pool5": x[ia] ** 2}, {"pool4": x[ib], "pool5": x[ib] ** 2}, same)
    assert out["accuracy_mean"] == 1.0 and out["num_distances"] == 24 and len(out["fold_accuracies"]) == 10
    noise = rng.normal(size=x.shape)
    rand = pair_similarity_svm(noise[ia], noise[ib], same)
    assert 0.3 < rand["accuracy_mean"] < 0.7  # chance 0.5
    grouped = pair_similarity_svm(x[ia], x[ib], same, groups=y[ia], n_folds=3)
    assert grouped["accuracy_mean"] == 1.0


def test_linear_probe_fits_on_the_labelled_set_only_and_scores_the_test_set():
    rng = np.random.default_rng(0)
    x_train, y_train = _blobs(rng, n_per_class=4)  # few labelled videos, as in the low-label protocol
    x_test, y_test = _blobs(rng, n_per_class=20)
    result = linear_probe(x_train, y_train, x_test, y_test)
    assert result["accuracy"] == 1.0 and result["predictions"].shape == (60,)
    # features that carry no class information: about chance (3 classes)
    noise = linear_probe(rng.normal(size=(30, 6)), np.arange(30) % 3, rng.normal(size=(300, 6)), np.arange(300) % 3)
    assert noise["accuracy"] < 0.5
    # test labels are only scored: permuting them changes the accuracy, not the predictions
    shuffled = linear_probe(x_train, y_train, x_test, rng.permutation(y_test))
    assert np.array_equal(shuffled["predictions"], result["predictions"]) and shuffled["accuracy"] < 0.7
    with pytest.raises(ValueError, match="labels for"):
        linear_probe(x_train, y_train[:-1], x_test, y_test)
    with pytest.raises(ValueError, match="at least two classes"):
        linear_probe(x_train[:2], y_train[:2], x_test, y_test)
