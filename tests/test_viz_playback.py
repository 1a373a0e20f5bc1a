"""The playback-order pictures and tuple builder: plain functions and widget callbacks, no browser."""

from __future__ import annotations

import numpy as np
import pytest
from test_viz_widgets import ArrayFrames

from vsslkit.eval.pretext import HeadSummary
from vsslkit.tasks.playback_order import label_of_slot_speeds
from vsslkit.viz import playback as P


def test_order_tuple_matches_the_sampler_and_its_label():
    choice = P.order_tuple(120, clips=3, seed=4, clip_len=8)
    assert choice.error is None and sorted(choice.speeds) == [-3, 1, 3] and choice.classes == 6
    assert choice.label == label_of_slot_speeds(choice.speeds)
    assert [int(np.diff(p.indices)[0]) for p in choice.plans] == list(choice.speeds)
    assert choice.label_name == "(" + ", ".join(f"{s:+d}x" for s in choice.speeds) + ")"
    assert f"label {choice.label} of 6" in P.describe_tuple(choice)
    other = [P.order_tuple(120, clips=3, seed=s, clip_len=8).label for s in range(30)]
    assert len(set(other)) == 6  # shuffling reaches every permutation


def test_order_tuple_reports_what_is_impossible():
    assert "needs 36 frames" in P.order_tuple(30, clips=5, clip_len=8, seed=0).error  # span (8 - 1) * 5 + 1
    assert "3 clips need 3 speeds" in P.order_tuple(100, clips=3, speeds=(1, 2)).error
    assert P.parse_speeds(" -3, 1 3 ") == (-3, 1, 3) and P.parse_speeds("") is None
    with pytest.raises(ValueError, match="whole numbers"):
        P.parse_speeds("fast")


def test_tuple_pictures():
    choice = P.order_tuple(120, clips=4, seed=1, clip_len=8)
    fig = P.tuple_timeline(choice, num_frames=120)
    assert [t.name for t in fig.data] == [f"slot {p}: {s:+d}x" for p, s in enumerate(choice.speeds)]
    assert all(np.all(np.diff(t.x) == s) for t, s in zip(fig.data, choice.speeds))
    sheet = P.tuple_strips(choice, ArrayFrames(), "a.mp4")
    assert sheet.ndim == 3 and sheet.shape[0] >= 4 * 8


def test_tuple_builder_redraws_and_shuffles():
    frames = ArrayFrames(120)
    shown = []
    box = P.tuple_builder([("a", "a.mp4")], frames, clip_len=8, display=shown.append)
    controls = {c.description: c for row in box.children[:2] for c in row.children}
    first = box.update()
    assert first.error is None and "label" in box.children[2].value and box.children[4].value[:4] == b"\x89PNG"
    box.shuffle()
    assert controls["seed"].value == 1 and frames.reads[-1] != []
    controls["clips n"].value = 5
    assert sorted(box.update().speeds) == [-5, -3, 1, 3, 5]
    controls["speeds"].value = "-2 1 2"
    assert "5 clips need 5 speeds" in box.children[2].value and box.children[3].layout.display == "none"
    controls["clips n"].value = 3
    assert sorted(box.update().speeds) == [-2, 1, 2] and box.children[3].layout.display is None
    controls["speeds"].value = "fast"
    assert "whole numbers" in box.children[2].value


def _summary(ceiling):
    counts = np.array([[3, 1], [0, 4]])
    return {"order": HeadSummary("order", ["(-3x, +3x)", "(+3x, -3x)"], counts, 0.875, 0.5, 0.5, ceiling)}


def test_ceiling_table_and_confusion():
    text = P.ceiling_markdown({"v2, n = 2": _summary(0.5), "v3, n = 2": _summary(None)})
    assert "| v2, n = 2 | 2 | 87.5 % | 50.0 % | 50.0 % |" in text and "100 % (solvable)" in text
    fig = P.order_confusion(_summary(None)["order"])
    assert np.allclose(fig.data[0].z, [[0.75, 0.25], [0.0, 1.0]]) and list(fig.data[0].x) == ["(-3x, +3x)", "(+3x, -3x)"]
    assert "n = 2" in fig.layout.title.text


def test_summaries_from_pretext_eval_json():
    raw = {"heads": {"order": {"accuracy": 0.5, "majority": 0.52, "chance": 0.5, "ceiling": 0.5,
                               "labels": ["(-3x, +3x)", "(+3x, -3x)"], "confusion": [[5, 5], [5, 5]]}}}
    s = P.summaries_from_results({"v2, n = 2": raw})["v2, n = 2"]["order"]
    assert (s.accuracy, s.ceiling, s.counts.sum()) == (0.5, 0.5, 20)
    assert "| v2, n = 2 | 2 | 50.0 % | 50.0 % | 50.0 % |" in P.ceiling_markdown({"v2, n = 2": {"order": s}})


def test_labelled_forward_backward_names_every_row():
    clip = np.zeros((3, 6, 5, 3), np.uint8)
    clip[:, :, :, 0] = np.arange(3)[:, None, None] * 50 + 10
    image = P.labelled_forward_backward({"v2": clip, "v3": clip}, gap=2)
    assert image.shape[0] == 4 * (6 + 2) - 2 and image.shape[1] == 150 + 3 * (5 + 2) - 2
    assert image[0, 150, 0] == 10 and image[8, 150, 0] == 110  # row 2 is row 1 played backward
