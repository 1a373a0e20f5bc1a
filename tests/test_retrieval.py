"""R@k: hand-computed cases, gallery-only normalisation, chunked == one block."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vsslkit.eval.retrieval import cosine_topk, recall_at_k, standardise_with_gallery


def test_recall_by_hand_with_ties():
    # After gallery standardisation: gallery rows are (+-1, +-1) patterns.
    gallery = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    g_labels = np.array([0, 1, 2, 3])
    query = gallery[[1, 2]] + 0.0  # exact copies of gallery rows 1 and 2
    q_labels = np.array([1, 3])
    r = recall_at_k(query, q_labels, gallery, g_labels, ks=(1, 2, 4))
    # query 0 ties exactly with gallery 0 and 1 -> lower index (0, class 0) first: miss at 1, hit at 2
    assert r.neighbours[0, :2].tolist() == [0, 1]
    assert r.hits[0].tolist() == [False, True, True]
    # Standardised gallery (mean (.5, .25), std (.5, .433)): g0 = g1 = (1, -.577), g2 = (-1, 1.732),
    # g3 = (-1, -.577). Query 1 = g2: cos with g3 is (1 - 1)/.. = 0 > cos with g0, g1 (< 0),
    # so its ranking is g2 (class 2), g3 (class 3): miss at 1, hit at 2.
    assert r.neighbours[1].tolist() == [2, 3, 0, 1] and r.hits[1].tolist() == [False, True, True]
    assert r.recall == {1: 0.0, 2: 1.0, 4: 1.0}


def test_k_larger_than_gallery_uses_whole_gallery():
    r = recall_at_k(np.eye(3)[:1], [2], np.eye(3), [0, 1, 2], ks=(1, 50))
    assert r.neighbours.shape == (1, 3) and r.recall[50] == 1.0


def test_normalisation_uses_gallery_statistics_only():
    # Gallery: the four compass points (mean 0, std 0.707 per dim). Queries sit far to the right.
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    g_labels = np.array([0, 1, 2, 3])
    query = np.array([[5.0, 0.1], [5.0, -0.1]])
    q, g = standardise_with_gallery(query, gallery)
    np.testing.assert_allclose(q, query / np.sqrt(0.5))  # gallery mean 0, std sqrt(.5)
    r = recall_at_k(query, [0, 0], gallery, g_labels, ks=(1,))
    assert r.neighbours[:, 0].tolist() == [0, 0] and r.recall[1] == 1.0
    # With the test set's own statistics the queries would become (0, +-1): they would retrieve
    # the north/south videos instead, so R@1 would be 0.
    q_test_stats, _ = standardise_with_gallery(query, query)
    idx, _ = cosine_topk(q_test_stats, g, 1)
    assert idx[:, 0].tolist() == [1, 3]


def test_leave_one_out_excludes_self():
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    idx, _ = cosine_topk(x, x, 2, exclude_self=True)
    assert (idx != np.arange(3)[:, None]).all()


def test_every_query_is_scored_with_odd_chunks():
    rng = np.random.default_rng(0)
    r = recall_at_k(rng.normal(size=(13, 4)), rng.integers(0, 3, 13), rng.normal(size=(9, 4)),
                    rng.integers(0, 3, 9), ks=(1, 5), chunk_size=4, gallery_chunk_size=2)
    assert r.neighbours.shape == (13, 5) and r.hits.shape == (13, 2)


@settings(max_examples=40, deadline=None)
@given(
    n_q=st.integers(1, 12), n_g=st.integers(1, 15), dim=st.integers(1, 4), k=st.integers(1, 20),
    qc=st.integers(1, 5), gc=st.integers(1, 6), seed=st.integers(0, 2**16), dup=st.booleans(),
)
def test_chunked_equals_one_block(n_q, n_g, dim, k, qc, gc, seed, dup):
    rng = np.random.default_rng(seed)
    gallery = rng.integers(-2, 3, size=(n_g, dim)).astype(float)  # small ints: many exact ties
    if dup:
        gallery = np.vstack([gallery, gallery])
    query = rng.integers(-2, 3, size=(n_q, dim)).astype(float)
    ql, gl = rng.integers(0, 3, n_q), rng.integers(0, 3, len(gallery))
    one = recall_at_k(query, ql, gallery, gl, ks=(1, k), chunk_size=10**6, gallery_chunk_size=10**6)
    chunked = recall_at_k(query, ql, gallery, gl, ks=(1, k), chunk_size=qc, gallery_chunk_size=gc)
    np.testing.assert_array_equal(one.neighbours, chunked.neighbours)
    np.testing.assert_array_equal(one.similarities, chunked.similarities)
    assert one.recall == chunked.recall


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="query dim"):
        recall_at_k(np.zeros((2, 3)), [0, 1], np.zeros((2, 4)), [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        recall_at_k(np.full((1, 2), np.nan), [0], np.zeros((2, 2)), [0, 1])


@pytest.mark.slow
@pytest.mark.real_videos
def test_retrieve_command_on_real_videos(real_videos, tmp_path, capsys):
    """Random-init tiny backbone, folder labels, leave-one-out retrieval: runs and records its protocol."""
    import json

    from vsslkit.cli import main

    out = tmp_path / "r.json"
    args = ["retrieve", "--data", str(real_videos / "labeled"), "--checkpoint", "random", "--backbone", "tiny_r3d",
            "--clip-len", "8", "--stride", "2", "--crop-size", "64", "--store", str(tmp_path / "store"),
            "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    print(printed)
    assert "R@1" in printed and "R@50" in printed
    result = json.loads(out.read_text())
    assert result["protocol"]["extra"]["retrieval_mode"] == "leave_one_out"
    assert result["protocol"]["layer"] == "pool5" and result["protocol"]["checkpoint"] == "random"
    assert result["metrics"]["num_queries"] + len(result["metrics"]["skipped"]) == 23
    assert 0.0 <= result["metrics"]["recall"]["1"] <= result["metrics"]["recall"]["50"] <= 1.0
