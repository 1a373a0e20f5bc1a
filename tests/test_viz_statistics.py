"""The seed 003 label view: the figure shows the labels clip_labels computes, and the flip toggle
moves them as flip_labels says."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
from test_statistics_labels import corner_object

from vsslkit.tasks.statistics_labels import clip_labels, flip_labels
from vsslkit.viz.statistics import statistics_explorer, statistics_view


def _clip():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(8, 56, 56, 3), dtype=np.uint8)
    return frames, corner_object()[0]


def test_view_shows_the_labels_and_flip_moves_them():
    frames, flow = _clip()
    view = statistics_view(frames, flow)
    expected = {k: int(v[0]) for k, v in clip_labels(frames[None], flow[None]).items()}
    assert view.labels == expected
    assert (view.labels["m1_pu"], view.labels["m1_ou"]) == (0, 6)  # the hand-worked corner object
    flipped = statistics_view(frames, flow, flip=True)
    assert flipped.labels == {k: int(v[0]) for k, v in flip_labels({k: np.array([v]) for k, v in expected.items()}).items()}
    np.testing.assert_allclose(flipped.magnitude, view.magnitude[:, ::-1], atol=1e-5)  # boundaries mirror
    kinds = [type(t).__name__ for t in view.figure.data]
    assert kinds == ["Image"] * 3 + ["Heatmap"] * 2 + ["Table"]
    table = view.figure.data[-1]
    assert list(table.cells.values[0]) == list(expected) and "down" not in table.cells.values[1][1]
    assert table.cells.values[1][1] == "6 (270-315 deg)"
    arrows = view.figure.layout.annotations
    assert sum(a.showarrow is True for a in arrows) == 2  # o_u and o_v in their pattern-1 blocks
    image = np.asarray(view.figure.data[0].z)  # pattern 1: the chosen block 0 is outlined in a label colour
    assert tuple(image[13, 5]) in {(255, 0, 0), (0, 160, 255), (255, 200, 0)}
    assert tuple(image[27, 20]) not in {(255, 0, 0), (0, 160, 255)}  # block 5 was not chosen for motion


def test_explorer_builds():
    frames, flow = _clip()
    app = statistics_explorer([("corner", frames, flow)])
    controls = app.children[0].children
    assert [c.description for c in controls] == ["clip", "flip horizontally", "frame"]
    controls[1].value = True  # the flip redraws without error
    assert isinstance(statistics_view(frames, flow).figure, go.Figure)


def test_dominant_colours_fill_their_cells_and_p_s_is_outlined():
    frames = np.zeros((8, 56, 56, 3), dtype=np.uint8)
    frames[..., 0] = 200  # red everywhere ...
    frames[:, :14, :14] = (30, 220, 30)  # ... but a green top-left block
    flow = corner_object()[0]
    view = statistics_view(frames, flow)
    table = view.figure.data[-1]
    names, fills = list(table.cells.values[0]), list(table.cells.fill.color[1])
    assert view.labels["a_C"] == 4 and fills[names.index("a_C")] == "rgb(255, 0, 0)"  # red: bin 4
    assert all(fills[i] == "white" for i, n in enumerate(names) if n.split("_")[1] not in ("cl", "cs", "C"))
    for n in ("a1_cl", "a1_cs", "a2_cl", "a3_cs"):
        c = view.labels[n]
        assert fills[names.index(n)] == f"rgb({255 * (c >> 2)}, {255 * (c >> 1 & 1)}, {255 * (c & 1)})"
    r, q = divmod(view.labels["a1_ps"], 4)
    image = np.asarray(view.figure.data[0].z)
    edge = image[r * 14 + 13 if r < 3 else r * 14, q * 14 + 5]  # an inner edge of the block (not the frame border)
    assert tuple(edge) == (0, 200, 0)  # p_s is drawn last


def test_heldout_figure_and_reading_follow_the_scores():
    from vsslkit.eval.statistics import LabelScore, heldout_reading
    from vsslkit.viz.statistics import heldout_figure

    rows = [LabelScore("m1_pu", 16, 10, 0.3, 0.2, 0.25), LabelScore("m1_ou", 8, 10, 0.1, 0.3),
            LabelScore("a_C", 8, 10, 0.9, 0.2)]
    fig = heldout_figure(rows)
    assert [t.name for t in fig.data] == ["network", "majority rate", "block-energy probe (no network)"]
    assert list(fig.data[0].y) == [30.0, 10.0, 90.0] and list(fig.data[2].x) == ["m1_pu"]
    text = heldout_reading(rows, name="net")
    assert text[0] == ("net: motion labels are not above their majority rate on average (20.0 % vs 25.0 %); "
                       "1 of 2 motion labels beat their own majority rate.")
    assert text[1].startswith("net: appearance labels are above their majority rate on average (90.0 % vs 20.0 %)")
    assert text[2] == "net beats the network-free probe on m1_pu (30.0 % vs 25.0 %; majority 20.0 %)."
    assert len(heldout_figure(rows[1:]).data) == 2


def test_centre_clip_crops_frames_and_flow_alike_and_flow_figure(tmp_path):
    from types import SimpleNamespace

    from vsslkit.viz.statistics import centre_clip, flow_figure

    frames = np.arange(20 * 64 * 64 * 3, dtype=np.int64).reshape(20, 64, 64, 3) % 251
    flow = np.random.default_rng(0).normal(size=(19, 64, 64, 2)).astype(np.float32)
    store = SimpleNamespace(ensure=lambda p: SimpleNamespace(num_frames=20), read=lambda p, i: frames[i].astype(np.uint8))
    cache = SimpleNamespace(read=lambda p, i: flow[i[0] : i[-1]])
    f, w = centre_clip(store, cache, "v", clip_len=8, size=56)
    assert f.shape == (8, 56, 56, 3) and w.shape == (7, 56, 56, 2)
    np.testing.assert_array_equal(f, frames[6:14, 4:60, 4:60])
    np.testing.assert_array_equal(w, flow[6:13, 4:60, 4:60])
    with pytest.raises(ValueError, match="a clip needs 30"):
        centre_clip(store, cache, "v", clip_len=30)
    fig = flow_figure(f, w, index=2)
    assert [type(t).__name__ for t in fig.data] == ["Image", "Heatmap", "Heatmap", "Heatmap"]
    np.testing.assert_allclose(np.asarray(fig.data[1].z), w[2, ..., 0])
