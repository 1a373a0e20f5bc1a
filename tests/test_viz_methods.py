"""The closing notebook's library parts: the methods figure (metric and sort menus), activation maps of
one clip under several backbones (batched = one by one), the retrieval explorer with a method picker,
and `pretrain_methods` (random init + the chosen methods at the table's recipe)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vsslkit import classroom
from vsslkit.eval import cam
from vsslkit.eval.retrieval import recall_at_k
from vsslkit.experiments import methods as me
from vsslkit.experiments.paired import load_data
from vsslkit.models import build_backbone
from vsslkit.viz import methods as mv

ROWS = [
    {"arm": "random init", "seeds": 3, "R@1": (10.0, 1.0), "R@5": (30.0, 2.0), "linear probe": (8.0, 0.5)},
    {"arm": "pace prediction", "seeds": 3, "R@1": (14.0, 2.0), "R@5": (28.0, 1.0), "linear probe": (12.0, 1.5),
     "pretext": {"accuracy": 70.0, "chance": 25.0, "majority": 27.0, "what": "speed"}},
    {"arm": "arrow of time", "seeds": 3, "R@1": (12.0, 0.0), "R@5": (35.0, 3.0), "linear probe": (math.nan, math.nan)},
]


def test_methods_figure_menus_pick_a_metric_and_sort_the_arms():
    fig = mv.methods_figure(ROWS, metrics=("R@1", "R@5", "linear probe"))
    assert [t.name for t in fig.data] == ["R@1", "R@5", "linear probe"]
    assert [t.visible for t in fig.data] == [True, False, False]
    assert list(fig.data[0].y) == [10.0, 14.0, 12.0] and list(fig.data[1].error_y.array) == [2.0, 1.0, 3.0]
    assert fig.layout.shapes[0].y0 == 10.0  # random init's R@1 as the dashed level
    metric_menu, sort_menu = fig.layout.updatemenus
    by_label = {b.label: b for b in metric_menu.buttons}
    assert by_label["R@5"].args[0]["visible"] == [False, True, False]
    assert by_label["R@5"].args[1]["shapes"][0]["y0"] == 30.0
    assert by_label["all"].args[0]["visible"] == [True, True, True]
    sorts = {b.label: b.args[0]["xaxis.categoryarray"] for b in sort_menu.buttons}
    assert sorts["table order"] == ["random init", "pace prediction", "arrow of time"]
    assert sorts["sort by R@5"] == ["arrow of time", "random init", "pace prediction"]
    assert sorts["sort by linear probe"] == ["pace prediction", "random init", "arrow of time"]  # NaN last


def test_metric_order_reads_the_pretext_column():
    assert mv.metric_order(ROWS, "pretext") == ["pace prediction", "random init", "arrow of time"]


def _backbones():
    torch.manual_seed(0)
    return {"a": build_backbone("tiny_r3d").eval(), "b": build_backbone("tiny_r3d").eval()}


def test_batched_activation_maps_equal_the_one_clip_maps():
    backbone = _backbones()["a"]
    clips = torch.randn(3, 3, 8, 32, 32)
    batched = cam.activation_maps(backbone, clips)
    assert batched.shape == (3, 8, 32, 32)
    for i in range(3):
        np.testing.assert_allclose(batched[i], cam.activation_map(backbone, clips[i : i + 1]), atol=1e-5)
    with pytest.raises(ValueError, match="expected clips"):
        cam.activation_maps(backbone, clips[0])


def test_cam_grid_rows_and_concentrations_match_the_batched_means():
    backbones = _backbones()
    clips = [classroom.probe_clip(name, seed=3, num_frames=9) for name in ("Zigzag", "MoveRight")]
    grid, conc = mv.cam_grid(backbones, *clips[0], count=4)
    assert grid.dtype == np.uint8 and grid.ndim == 3 and set(conc) == {"a", "b"}
    heat = cam.activation_map(backbones["a"], classroom.model_input(clips[0][0]))
    assert conc["a"] == pytest.approx(cam.heat_concentration(heat, clips[0][1]))
    single = {name: np.mean([mv.cam_grid(backbones, f, m, count=1)[1][name] for f, m in clips]) for name in backbones}
    means = mv.mean_concentrations(backbones, clips)
    assert means == pytest.approx(single, rel=1e-4)
    box = mv.cam_explorer(backbones, {"first": clips[0], "second": clips[1]}, count=3)
    assert set(box.pick("second")) == {"a", "b"}


def test_method_retrieval_explorer_shows_the_picked_method_beside_random_init(tiny_synthetic):
    data = load_data(tiny_synthetic, progress=False)
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(len(data.test), 8)), rng.normal(size=(len(data.train), 8))
    results = {me.RANDOM: recall_at_k(q, data.test.labels, g, data.train.labels, ks=(1, 5)),
               "pace prediction": recall_at_k(-q, data.test.labels, g, data.train.labels, ks=(1, 5))}
    box = mv.method_retrieval_explorer(results, queries=data.test, gallery=data.train, frames=data.store, k=3)
    shown = box.pick("pace prediction", 2)
    assert list(shown) == ["pace prediction", me.RANDOM]
    assert list(shown["pace prediction"].hits) == [
        int(data.train.labels[j]) == int(data.test.labels[2]) for j in results["pace prediction"].neighbours[2][:3]]
    with pytest.raises(ValueError, match="baseline 'nothing'"):
        mv.method_retrieval_explorer(results, queries=data.test, gallery=data.train, frames=data.store,
                                     baseline="nothing")


@pytest.mark.slow
def test_pretrain_methods_trains_each_chosen_method_with_the_recipe(tiny_synthetic, tmp_path):
    data = load_data(tiny_synthetic, progress=False)
    lines: list[str] = []
    arms = me.pretrain_methods(data, steps=2, out_dir=tmp_path, keys=("pace", "ascnet"), batch_size=4,
                               progress=False, report=lines.append)
    assert list(arms) == [me.RANDOM, "pace prediction", "ASCNet (ACP + SCP)"]
    assert arms[me.RANDOM].checkpoint is None and arms[me.RANDOM].steps == 0
    for name in ("pace prediction", "ASCNet (ACP + SCP)"):
        arm = arms[name]
        assert arm.steps == 2 and arm.checkpoint is not None and arm.checkpoint.is_file() and "loss" in arm.last
        assert not arm.backbone.training
    assert "pace prediction: 2 steps in" in "\n".join(lines)
    assert "pretext.speed_acc" in arms["pace prediction"].last and "pretext.spread_a" in arms["ASCNet (ACP + SCP)"].last
