"""Every figure function runs on plain values and encodes what it claims to show."""

import numpy as np
import pytest

from vsslkit.plans import Plan, constant_plan
from vsslkit.viz import plots


def test_plan_timeline_one_trace_per_plan_and_marks_the_change():
    rng = np.random.default_rng(0)
    change = Plan(np.array([0, 1, 2, 3, 5, 7, 9, 11]), "speed_change", {"r1": 1, "r2": 2, "change_at": 4})
    fig = plots.plan_timeline([constant_plan(40, 8, 2, rng), change], num_frames=40, names=["a", "b"])
    assert [t.name for t in fig.data] == ["a", "b"]
    assert list(fig.data[1].x) == [0, 1, 2, 3, 5, 7, 9, 11]
    assert any("speed change at clip frame 4" in (a.text or "") for a in fig.layout.annotations)


def test_film_strip_tiles_frames_in_order():
    frames = np.stack([np.full((4, 5, 3), v, np.uint8) for v in (10, 20, 30)])
    sheet = plots.film_strip(frames, columns=2, gap=1)
    assert sheet.shape == (9, 11, 3)
    assert sheet[0, 0, 0] == 10 and sheet[0, 6, 0] == 20 and sheet[5, 0, 0] == 30
    assert sheet[0, 5, 0] == 255  # the gap
    with pytest.raises(ValueError):
        plots.film_strip(frames[0])


def test_forward_backward_strips_two_rows_per_clip():
    clip = np.stack([np.full((4, 5, 3), v, np.uint8) for v in (10, 20, 30)])
    sheet, labels = plots.forward_backward_strips({"a": clip, "b": clip + 1}, gap=1)
    assert sheet.shape == (4 * 5 - 1, 3 * 6 - 1, 3) and sheet.dtype == np.uint8
    assert labels == ["a, forward", "a, backward", "b, forward", "b, backward"]
    assert [sheet[0, c * 6, 0] for c in range(3)] == [10, 20, 30]  # a forward
    assert [sheet[5, c * 6, 0] for c in range(3)] == [30, 20, 10]  # a backward
    assert [sheet[15, c * 6, 0] for c in range(3)] == [31, 21, 11]  # b backward
    with pytest.raises(ValueError, match="one shape"):
        plots.forward_backward_strips({"a": clip, "b": clip[:2]})
    with pytest.raises(ValueError, match="at least one clip"):
        plots.forward_backward_strips({})


def test_curves_confusion_recall_bars_slider(tmp_path):
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text("step,loss,acc\n1,2.0,\n2,1.5,0.5\n")
    rows = plots.read_metric_rows(csv_path)
    assert rows == [{"step": 1.0, "loss": 2.0}, {"step": 2.0, "loss": 1.5, "acc": 0.5}]
    fig = plots.training_curves({"run": rows}, metrics=("loss", "acc"))
    assert [len(t.x) for t in fig.data] == [2, 1]
    cm = np.array([[1.0, 0.0], [0.25, 0.75]])
    heat = plots.confusion_figure(cm, ["a", "b"])
    assert np.allclose(np.array(heat.data[0].z), cm)
    rec = plots.recall_figure({"random": {1: 10.0, 5: 30.0}, "pretrained": {5: 40.0, 1: 20.0}})
    assert list(rec.data[1].x) == [1, 5] and list(rec.data[1].y) == [20.0, 40.0]
    bars = plots.bar_comparison({"random": (20.0, 2.0), "speed": (30.0, 1.0)})
    assert list(bars.data[0].y) == [20.0, 30.0]
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    slider = plots.frames_slider_figure(frames)
    assert len(slider.frames) == 3 and len(slider.layout.sliders[0].steps) == 3
    assert plots.image_figure(frames[0]).data[0].type == "image"
