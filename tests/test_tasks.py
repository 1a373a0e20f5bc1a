"""Pretext tasks: plans match labels, label round trips, class frequencies, min_frames, heads."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare
from torch import nn

from vsslkit.plans import VideoTooShortError
from vsslkit.tasks import (
    TASK_NAMES,
    Joint,
    MoCo,
    PaceTask,
    SpeedChangeCoarseTask,
    SpeedChangeFineTask,
    SupervisedTask,
    make_task,
)
from vsslkit.tasks.base import Features
from vsslkit.tasks.model import PretextModel
from vsslkit.tasks.same_batch import all_transforms

torch.set_num_threads(1)

SPEED_TASKS = [
    PaceTask(),
    PaceTask(clip_len=8, speeds=(1, 2), extra_frames=1),
    SpeedChangeCoarseTask(),
    SpeedChangeCoarseTask(clip_len=8, extra_frames=1),
    SpeedChangeFineTask(),
    SpeedChangeFineTask(extra_frames=1),
    SpeedChangeFineTask(clip_len=8, pool=(1, 2, 3, 4), primary="class"),
    SpeedChangeFineTask(clip_len=12, pool=(1, 2)),
]
IDS = [f"{t.name}-K{t.clip_len}-e{t.extra_frames}-{getattr(t, 'primary', '')}" for t in SPEED_TASKS]


def expected_steps(task, labels) -> tuple[int, int, int]:
    """(r1, r2, m) of a sample as its LABELS describe it; m = K for constant clips."""
    params = task.params_of(labels)
    if isinstance(task, PaceTask):
        return params["p"], params["p"], task.clip_len
    if isinstance(task, SpeedChangeCoarseTask):
        if params["pattern"] == "constant":
            return params["p"], params["p"], task.clip_len
        return None, None, task.change_location  # r1, r2 vary inside the class; checked below
    m = params["m"]
    return params["r1"], params["r2"], task.clip_len if m is None else m


@pytest.mark.parametrize("task", SPEED_TASKS, ids=IDS)
@settings(max_examples=150, deadline=None, derandomize=True)
@given(extra=st.integers(0, 40), seed=st.integers(0, 2**32 - 1))
def test_sampled_plans_match_their_labels(task, extra, seed):
    num_frames = task.min_frames + extra
    sample = task.sample(num_frames, np.random.default_rng(seed))
    (plan,) = sample.plans.values()
    idx = plan.indices
    assert len(idx) == task.clip_len + task.extra_frames
    assert idx.min() >= 0 and idx.max() < num_frames and np.all(np.diff(idx) > 0)
    assert set(sample.labels) == set(task.heads)
    assert all(0 <= sample.labels[h] < n for h, n in task.heads.items())
    r1, r2, m = expected_steps(task, sample.labels)
    if r1 is None:  # coarse jump class: the pair must belong to the class
        r1, r2 = plan.params["r1"], plan.params["r2"]
        assert task.label_of({**task.params_of(sample.labels), "r1": r1, "r2": r2}) == sample.labels
    # The input has K elements: frames (RGB) or differences of K+1 frames (residual). Element j's
    # step is d[j] for residual input, and for RGB frame j>0 is reached by step d[j-1]. Either
    # way the elements [0, m) are at r1 and [m, K) at r2:
    d = np.diff(idx)
    element_steps = d if task.extra_frames == 1 else np.concatenate([[d[0]], d])
    assert np.all(element_steps[:m] == r1) and np.all(element_steps[m:] == r2)
    again = task.sample(num_frames, np.random.default_rng(seed))
    assert again.labels == sample.labels and np.array_equal(again.plan.indices, idx)


def test_residual_plans_put_the_change_on_the_differences():
    task = SpeedChangeFineTask(extra_frames=1)
    plan = task.plan_for({"r1": 1, "r2": 3, "m": 5}, 100, np.random.default_rng(0), start=0)
    assert plan.indices.tolist() == [0, 1, 2, 3, 4, 5, 8, 11, 14, 17, 20, 23, 26, 29, 32, 35, 38]
    assert np.diff(plan.indices).tolist() == [1] * 5 + [3] * 11  # 16 differences, change at m=5
    rgb = SpeedChangeFineTask().plan_for({"r1": 1, "r2": 3, "m": 5}, 100, np.random.default_rng(0), start=0)
    assert rgb.indices.tolist() == [0, 1, 2, 3, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 34, 37]  # c[5] first at r2


@pytest.mark.parametrize("task", SPEED_TASKS, ids=IDS)
def test_min_frames_is_exactly_the_largest_span(task):
    spans = [np.ptp(task.plan_for(t, 10_000, np.random.default_rng(0), start=0).indices) + 1 for t in task.transforms()]
    assert task.min_frames == max(spans)
    rng = np.random.default_rng(1)
    for _ in range(200):
        task.sample(task.min_frames, rng)  # every drawn transform fits a video of exactly min_frames
    with pytest.raises(VideoTooShortError):
        task.sample(task.min_frames - 1, rng)  # refused whatever would be drawn: no speed shrinking


def test_known_min_frames_and_classes():
    assert (PaceTask().min_frames, PaceTask().heads) == (61, {"speed": 4})
    assert (SpeedChangeCoarseTask().min_frames, SpeedChangeCoarseTask().heads) == (61, {"speed": 8})
    fine = SpeedChangeFineTask()
    assert fine.locations == (5, 6, 7, 8, 9, 10) and fine.heads == {"speed": 9, "loc": 7} and fine.dummy_loc == 6
    assert fine.min_frames == 46 and SpeedChangeFineTask(extra_frames=1).min_frames == 49
    assert SpeedChangeFineTask(pool=(1, 2, 3, 4)).heads == {"speed": 16, "loc": 7}
    assert SpeedChangeCoarseTask().change_at == 8 and SpeedChangeCoarseTask(extra_frames=1).change_at == 9


def test_coarse_label_table():
    task = SpeedChangeCoarseTask()
    table = [task.params_of({"speed": i}) for i in range(8)]
    assert table == [
        {"pattern": "constant", "p": 1}, {"pattern": "constant", "p": 2},
        {"pattern": "constant", "p": 3}, {"pattern": "constant", "p": 4},
        {"pattern": "jump-up", "j": 1}, {"pattern": "jump-up", "j": 2},
        {"pattern": "drop-down", "j": 1}, {"pattern": "drop-down", "j": 2},
    ]
    assert task.pairs("jump-up", 1) == [(1, 2), (2, 3), (3, 4)] and task.pairs("drop-down", 2) == [(3, 1), (4, 2)]
    with pytest.raises(ValueError, match="not a jump-up pair"):
        task.label_of({"pattern": "jump-up", "j": 1, "r1": 1, "r2": 3})


def test_fine_label_indexing():
    task = SpeedChangeFineTask()
    assert [task.label_of({"r1": a, "r2": b, "m": None if a == b else 5})["speed"]
            for a, b in itertools.product((1, 2, 3), repeat=2)] == list(range(9))
    assert task.label_of({"r1": 2, "r2": 3, "m": 10}) == {"speed": 5, "loc": 5}
    assert task.label_of({"r1": 2, "r2": 2, "m": None}) == {"speed": 4, "loc": 6}
    with pytest.raises(ValueError, match="inconsistent"):
        task.params_of({"speed": 4, "loc": 0})  # constant clip with a real location
    with pytest.raises(ValueError, match="inconsistent"):
        task.params_of({"speed": 1, "loc": 6})  # speed change with the dummy location
    with pytest.raises(ValueError, match="not in"):
        task.label_of({"r1": 1, "r2": 2, "m": 11})


@pytest.mark.parametrize("task", SPEED_TASKS, ids=IDS)
def test_label_round_trip_for_every_class(task):
    heads = list(task.heads)
    valid = 0
    for combo in itertools.product(*(range(task.heads[h]) for h in heads)):
        labels = dict(zip(heads, combo))
        try:
            params = task.params_of(labels)
        except ValueError:
            continue  # only the fine task has invalid (speed, loc) combinations
        assert task.label_of(params) == labels
        valid += 1
    classes = {tuple(sorted(task.label_of(t).items())) for t in task.transforms()}
    assert valid == len(classes)  # every valid label is produced by some transform and vice versa
    for t in task.transforms():
        assert task.label_of(task.params_of(task.label_of(t))) == task.label_of(t)


def _frequencies(task, key, n=20_000, seed=123):
    rng = np.random.default_rng(seed)
    labels = [task.label_of(task.sample_params(rng))[key] for _ in range(n)]
    return np.bincount(labels, minlength=task.heads[key]), n


def test_coarse_frequencies_follow_pattern_then_subparameter():
    counts, n = _frequencies(SpeedChangeCoarseTask(), "speed")
    expected = n * np.array([1 / 12] * 4 + [1 / 6] * 4)
    assert chisquare(counts, expected).pvalue > 1e-3
    rng = np.random.default_rng(5)
    pairs = [SpeedChangeCoarseTask().params_for_class(4, rng) for _ in range(6000)]
    pair_counts = np.unique([(p["r1"], p["r2"]) for p in pairs], axis=0, return_counts=True)[1]
    assert len(pair_counts) == 3 and chisquare(pair_counts).pvalue > 1e-3


def test_fine_location_primary_frequencies():
    task = SpeedChangeFineTask()
    loc, n = _frequencies(task, "loc")
    assert chisquare(loc).pvalue > 1e-3  # 6 locations + dummy, each 1/7
    assert abs(loc[task.dummy_loc] / n - 1 / 7) < 0.01
    speed, _ = _frequencies(task, "speed")
    constant = speed[[0, 4, 8]]
    expected = n * np.array([(1 / 7) / 3 if i in (0, 4, 8) else (6 / 7) / 6 for i in range(9)])
    assert chisquare(speed, expected).pvalue > 1e-3 and abs(constant.sum() / n - 1 / 7) < 0.01


def test_fine_class_primary_frequencies():
    task = SpeedChangeFineTask(primary="class")
    speed, n = _frequencies(task, "speed")
    assert chisquare(speed).pvalue > 1e-3  # 9 classes, each 1/9
    loc, _ = _frequencies(task, "loc")
    assert abs(loc[task.dummy_loc] / n - 1 / 3) < 0.01
    assert chisquare(loc[:-1]).pvalue > 1e-3  # the six locations share the rest equally


def test_pace_frequencies_uniform():
    counts, _ = _frequencies(PaceTask(), "speed")
    assert chisquare(counts).pvalue > 1e-3


def test_bad_task_arguments():
    with pytest.raises(ValueError, match="extra_frames"):
        PaceTask(extra_frames=2)
    with pytest.raises(ValueError, match="primary"):
        SpeedChangeFineTask(primary="random")
    with pytest.raises(ValueError, match="too short"):
        SpeedChangeFineTask(clip_len=5)
    with pytest.raises(ValueError, match="differ by 3"):
        SpeedChangeCoarseTask(speeds=(1, 2, 3), jumps=(1, 3))
    with pytest.raises(ValueError, match="speeds"):
        PaceTask(speeds=(2, 1))


def test_make_task_by_name():
    assert TASK_NAMES == ("pace", "speed-change-coarse", "speed-change-fine", "arrow-of-time", "supervised", "none",
                          "ascnet", "playback-order", "playback-speed", "statistics", "tracking")
    assert make_task("none", clip_len=8).heads == {}
    assert make_task("tracking").name == "timecycle"  # the CLI name; metrics keep the branch name
    assert make_task("speed-change-fine", pool=[1, 2]).heads == {"speed": 4, "loc": 7}
    assert make_task("supervised", num_classes=3, clip_len=8, stride=2).min_frames == 15
    with pytest.raises(ValueError, match="unknown task 'speedy'"):
        make_task("speedy")


def test_supervised_task_plans():
    task = SupervisedTask(num_classes=5, clip_len=8, stride=2, extra_frames=1)
    sample = task.sample(40, np.random.default_rng(0))
    assert sample.labels == {} and len(sample.plan) == 9 and set(np.diff(sample.plan.indices)) == {2}
    plans = task.test_plans(40, count=10)
    assert len(plans) == 10 and plans[0].indices[0] == 0 and plans[-1].indices[-1] == 39
    assert task.params_of(task.label_of({"class": 4})) == {"class": 4}
    with pytest.raises(VideoTooShortError):
        task.sample(16, np.random.default_rng(0))


def test_same_batch_holds_every_class_with_a_shared_start():
    task = SpeedChangeCoarseTask()
    samples = all_transforms(task, 70, np.random.default_rng(3))
    assert [s.labels["speed"] for s in samples] == list(range(8))
    starts = {int(s.plan.indices[0]) for s in samples}
    assert len(starts) == 1 and all(s.plan.indices.max() < 70 for s in samples)
    joint = Joint({"pretext": SpeedChangeFineTask(), "moco": MoCo(key_task=SpeedChangeFineTask())})
    fine = all_transforms(joint, 60, np.random.default_rng(4))
    assert [s.labels["pretext.speed"] for s in fine] == list(range(9))
    assert all(list(s.plans) == ["pretext.clip", "moco.key"] for s in fine)
    assert [s.labels["pretext.loc"] == 6 for s in fine] == [i in (0, 4, 8) for i in range(9)]
    with pytest.raises(TypeError, match="no speed classes"):
        all_transforms(SupervisedTask(num_classes=3), 60, np.random.default_rng(0))
    with pytest.raises(VideoTooShortError):
        all_transforms(task, 60, np.random.default_rng(0))


class TinyBackbone(nn.Module):
    def __init__(self, feature_dim: int = 6):
        super().__init__()
        self.feature_dim = feature_dim
        self.conv = nn.Conv3d(3, feature_dim, kernel_size=(3, 3, 3), padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3, 4))


def test_heads_and_loss_are_the_sum_of_cross_entropies():
    task = SpeedChangeFineTask()
    backbone = TinyBackbone()
    head = task.make_module(backbone)
    clips = torch.randn(5, 3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    out = head(Features(backbone, {"clip": clips}))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"speed": (5, 9), "loc": (5, 7)}
    labels = {"speed": torch.tensor([0, 1, 2, 3, 4]), "loc": torch.tensor([6, 0, 1, 2, 6]), "class": torch.zeros(5)}
    loss, metrics = task.loss(out, labels)
    ref = nn.functional.cross_entropy(out["speed"], labels["speed"]) + nn.functional.cross_entropy(out["loc"], labels["loc"])
    assert torch.allclose(loss, ref)
    assert metrics["speed_acc"] == float((out["speed"].argmax(1) == labels["speed"]).float().mean())
    assert set(metrics) == {"speed_loss", "speed_acc", "loc_loss", "loc_acc", "loss"}
    with pytest.raises(KeyError, match="no labels for head 'loc'"):
        task.loss(out, {"speed": labels["speed"]})


def test_pretext_model_trains_without_contrastive_branch():
    torch.manual_seed(0)
    task = PaceTask(clip_len=4)
    model = PretextModel(TinyBackbone(), task)
    clips = torch.randn(4, 3, 4, 8, 8)
    labels = {"speed": torch.tensor([0, 1, 2, 3])}
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    first, _ = model.training_step({"clips": {"clip": clips}, "labels": labels})
    for _ in range(30):
        loss, metrics = model.training_step({"clips": {"clip": clips}, "labels": labels})
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.after_optimizer_step()
    assert metrics["loss"] < float(first.detach()) and set(metrics) >= {"loss", "speed_loss", "speed_acc"}
    assert model({"clip": clips})["speed"].shape == (4, 4) and model.predict(clips)["speed"].shape == (4, 4)


def test_fine_task_without_localization_has_only_the_speed_head():
    import torch

    from vsslkit.tasks import make_task

    task = make_task("speed-change-fine", clip_len=16, localize=False)
    assert task.heads == {"speed": 9}
    sample = task.sample(task.min_frames, np.random.default_rng(0))
    assert set(sample.labels) == {"speed", "loc"}  # the label is still derivable, just not trained
    backbone = TinyBackbone(8)
    out = task.make_module(backbone)(Features(backbone, {"clip": torch.randn(2, 3, 4, 8, 8)}))
    loss, metrics = task.loss(out, {"speed": torch.tensor([0, 4]), "loc": torch.tensor([6, 6])})
    assert set(out) == {"speed"} and "loc_acc" not in metrics and loss.requires_grad
