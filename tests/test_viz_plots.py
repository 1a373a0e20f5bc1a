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
    assert any("speed change at m = 4" in (a.text or "") for a in fig.layout.annotations)
    residual = plots.plan_timeline([change], num_frames=40, extra_frames=1)  # plan position 4 = m 3 (+1 frame)
    assert any("speed change at m = 3" in (a.text or "") for a in residual.layout.annotations)


def test_film_strip_tiles_frames_in_order():
    frames = np.stack([np.full((4, 5, 3), v, np.uint8) for v in (10, 20, 30)])
    sheet = plots.film_strip(frames, columns=2, gap=1)
    assert sheet.shape == (9, 11, 3)
    assert sheet[0, 0, 0] == 10 and sheet[0, 6, 0] == 20 and sheet[5, 0, 0] == 30
    assert sheet[0, 5, 0] == 255  # the gap
    with pytest.raises(ValueError):
        plots.film_strip(frames[0])


def test_labelled_rows_write_each_name_left_of_its_strip():
    rows = [np.full((10, 30, 3), 200, np.uint8), np.full((10, 20, 3), 100, np.uint8)]
    sheet = plots.labelled_rows(rows, ["MoveRight", "Orbit"], label_width=60, gap=2)
    assert sheet.shape == (22, 90, 3)
    assert (sheet[:10, :60] < 128).any() and (sheet[12:, :60] < 128).any()  # dark text in both label boxes
    assert (sheet[:10, 60:90] == 200).all() and (sheet[12:, 60:80] == 100).all()
    with pytest.raises(ValueError):
        plots.labelled_rows(rows, ["only one"])


def test_frames_slider_has_a_play_button_and_an_optional_colour_bar():
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    fig = plots.frames_slider_figure(frames)
    assert fig.layout.updatemenus[0].buttons[0].method == "animate" and "play" in fig.layout.updatemenus[0].buttons[0].label
    assert len(fig.data) == 1
    heat = plots.frames_slider_figure(frames, colour_scale="heat")
    bar = heat.data[1]
    assert bar.type == "heatmap" and bar.showscale and bar.colorscale[0][1].lower() in ("rgb(0,0,131)", "#000083")
    assert all(list(f.traces) == [0] for f in heat.frames)  # the slider only replaces the image


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
    assert [t.mode for t in fig.data] == ["lines", "markers"]  # a single logged value is still drawn
    cm = np.array([[1.0, 0.0], [0.25, 0.75]])
    heat = plots.confusion_figure(cm, ["a", "b"])
    assert np.allclose(np.array(heat.data[0].z), cm)
    rec = plots.recall_figure({"random": {1: 10.0, 5: 30.0}, "pretrained": {5: 40.0, 1: 20.0}})
    assert list(rec.data[1].x) == [1, 5] and list(rec.data[1].y) == [20.0, 40.0]
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    slider = plots.frames_slider_figure(frames)
    assert len(slider.frames) == 3 and len(slider.layout.sliders[0].steps) == 3
    assert plots.image_figure(frames[0]).data[0].type == "image"


def test_training_curves_put_accuracy_and_loss_on_separate_titled_axes():
    rows = [{"step": 10.0, "loss": 5.5, "speed_acc": 0.2, "loc_acc": 0.1}, {"step": 20.0, "loss": 5.0, "speed_acc": 0.4}]
    fig = plots.training_curves({"seed 0": rows, "seed 1": rows}, metrics=("loss", "speed_acc", "loc_acc"))
    axes = {t.name: t.yaxis for t in fig.data}
    assert axes["seed 0 · loss"] == axes["seed 1 · loss"] == "y"
    assert axes["seed 0 · speed_acc"] == axes["seed 0 · loc_acc"] == axes["seed 1 · speed_acc"] == "y2"
    assert fig.layout.yaxis.title.text == "loss (cross-entropy, nats)"
    assert fig.layout.yaxis2.title.text == "accuracy (fraction correct)" and tuple(fig.layout.yaxis2.range) == (-0.02, 1.02)
    assert fig.layout.xaxis2.title.text == "optimiser step"  # the bottom panel carries the shared x title
    assert [t.name for t in fig.data][:3] == ["seed 0 · loss", "seed 0 · speed_acc", "seed 0 · loc_acc"]
    # only losses asked for: one panel, titled, nothing on a second axis
    one = plots.training_curves({"r": [{"epoch": 1.0, "loss": 2.0}, {"epoch": 2.0, "loss": 1.0}]}, metrics=("loss",),
                                x="epoch")
    assert [t.yaxis for t in one.data] == ["y"] and "yaxis2" not in one.layout.to_plotly_json()
    assert one.layout.yaxis.title.text == "loss (cross-entropy, nats)" and one.layout.xaxis.title.text == "epoch"
    # a metric nobody logged does not get an empty panel
    assert len({t.yaxis for t in plots.training_curves({"r": rows}, metrics=("loss", "ctr_acc")).data}) == 1


def test_recall_figure_labels_only_the_measured_k():
    recall = {1: 20.0, 5: 50.0, 10: 65.0, 20: 78.0, 50: 91.0}
    fig = plots.recall_figure({"random init": recall, "pretrained": {k: v + 5 for k, v in recall.items()}})
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis.tickmode == "array"
    assert list(fig.layout.xaxis.tickvals) == [1, 5, 10, 20, 50]
    assert list(fig.layout.xaxis.ticktext) == ["1", "5", "10", "20", "50"]
    assert fig.layout.xaxis.title.text.startswith("k ") and fig.layout.yaxis.title.text == "R@k (% of test queries)"
    assert list(fig.data[1].y) == [25.0, 55.0, 70.0, 83.0, 96.0]


def test_paired_figure_one_line_per_seed_or_plain_points():
    measures = {"fine-tuned acc.": {"random init": [18.0, 20.0, 16.0], "pretrained": [20.0, 22.0, 15.0]},
                "R@1": {"random init": [17.0, 22.0, 20.0], "pretrained": [28.0, 24.0, 33.0]}}
    fig = plots.paired_figure(measures, seeds=[0, 1, 2], yaxis="% of test videos")
    seed_lines = [t for t in fig.data if t.name.startswith("seed")]
    assert len(seed_lines) == 6 and all(t.mode == "lines+markers" and len(t.x) == 2 for t in seed_lines)
    seed2_r1 = next(t for t in seed_lines if t.name == "seed 2" and t.xaxis == "x2")
    assert list(seed2_r1.x) == ["random init", "pretrained"] and list(seed2_r1.y) == [20.0, 33.0]
    means = [t for t in fig.data if t.name == "mean"]
    assert [list(t.y) for t in means] == [[18.0, 19.0], [pytest.approx(59 / 3), pytest.approx(85 / 3)]]
    assert sum(t.showlegend for t in fig.data) == 4  # each seed and the mean once
    assert fig.layout.yaxis.title.text == fig.layout.yaxis2.title.text == "% of test videos"
    assert [a.text for a in fig.layout.annotations] == ["fine-tuned acc.", "R@1"]
    one = plots.paired_figure({"R@1": {"random init": [17.0], "pretrained": [28.0]}})
    assert [t.mode for t in one.data] == ["markers"] and not any(t.name == "mean" for t in one.data)
