"""Playback-speed order prediction (seed 002): plans, eq.-1 sets, the VCOP order label, the pairwise
head, labels that follow their rows, the speed baseline, time-symmetric ceilings, the CLI."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_clips import MemorySource

from vsslkit.data.clips import BatchPreparer, ClipDataset, collate
from vsslkit.models.heads import PairwiseOrderHead
from vsslkit.plans import VideoTooShortError
from vsslkit.tasks import Joint, MoCo, label_name, make_task
from vsslkit.tasks.model import PretextModel
from vsslkit.tasks.playback_order import (
    PlaybackOrderTask,
    PlaybackSpeedTask,
    eq1_speeds,
    label_of_permutation,
    label_of_slot_speeds,
    permutation_of_label,
    slot_speeds,
    speed_of_plan,
    speed_plan,
    time_symmetric_ceiling,
)

torch.set_num_threads(1)

EQ1_TABLE = {2: (-3, 3), 3: (-3, 1, 3), 4: (-3, -1, 1, 3), 5: (-5, -3, 1, 3, 5), 6: (-5, -3, -1, 1, 3, 5)}


# --- speed sets and plans --------------------------------------------------------------------


def test_eq1_sets_are_the_papers():
    assert {n: eq1_speeds(n) for n in range(2, 7)} == EQ1_TABLE
    for bad in (1, 7):
        with pytest.raises(ValueError, match="2..6"):
            eq1_speeds(bad)


@settings(max_examples=300, deadline=None)
@given(num_frames=st.integers(1, 150), clip_len=st.integers(2, 12), speed=st.integers(-6, 6).filter(bool),
       seed=st.integers(0, 2**32 - 1))
def test_speed_plan_in_range_with_its_stride_and_direction(num_frames, clip_len, speed, seed):
    span = (clip_len - 1) * abs(speed) + 1
    if span > num_frames:
        with pytest.raises(VideoTooShortError):
            speed_plan(num_frames, clip_len, speed, np.random.default_rng(seed))
        return
    plan = speed_plan(num_frames, clip_len, speed, np.random.default_rng(seed))
    steps = np.diff(plan.indices)
    assert len(plan) == clip_len and plan.indices.min() >= 0 and plan.indices.max() < num_frames
    assert np.all(steps == speed)  # reversed clips: strictly decreasing by |s|
    assert speed_of_plan(plan) == plan.params["speed"] == speed
    assert plan.params["reverse"] == (speed < 0)


def test_reversed_clips_start_anywhere_the_span_fits():
    """Own random start per clip, uniform over the whole range for both directions, never wrapping."""
    rng = np.random.default_rng(0)
    firsts = {speed_plan(30, 4, -3, rng).indices[0] for _ in range(500)}
    assert firsts == set(range(9, 30))  # a reversed clip of span 10 can start at frames 9..29


@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 6), num_frames=st.integers(20, 120), seed=st.integers(0, 2**32 - 1))
def test_tuples_have_one_clip_per_speed_and_label_from_plans(n, num_frames, seed):
    task = PlaybackOrderTask(clip_len=4, clips=n)
    if num_frames < task.min_frames:
        with pytest.raises(VideoTooShortError):
            task.sample(num_frames, np.random.default_rng(seed))
        return
    sample = task.sample(num_frames, np.random.default_rng(seed))
    shown = [speed_of_plan(sample.plans[f"clip{p}"]) for p in range(n)]
    assert sorted(shown) == list(EQ1_TABLE[n])
    assert all(p.indices.min() >= 0 and p.indices.max() < num_frames for p in sample.plans.values())
    assert sample.labels == task.label_of_plans(sample.plans) == {"order": label_of_slot_speeds(shown)}
    assert slot_speeds(sample.labels["order"], task.speeds) == tuple(shown)


def test_clips_of_a_tuple_start_independently_and_may_overlap():
    task = PlaybackOrderTask(clip_len=4, clips=3)
    rng = np.random.default_rng(1)
    starts, overlaps = set(), 0
    for _ in range(200):
        plans = list(task.sample(40, rng).plans.values())
        starts.add(tuple(int(p.params["start"]) for p in plans))
        spans = [set(p.indices.tolist()) for p in plans]
        overlaps += any(a & b for a, b in itertools.combinations(spans, 2))
    assert len(starts) > 150 and overlaps > 0


# --- the order label -------------------------------------------------------------------------


def test_worked_example_slots_plus3_minus3_plus1_is_label_4():
    assert label_of_slot_speeds((3, -3, 1)) == 4
    assert permutation_of_label(4, 3) == (2, 0, 1)
    assert PlaybackOrderTask(clips=3).label_name("order", 4) == "(+3x, -3x, +1x)"


@pytest.mark.parametrize("n", range(2, 7))
def test_label_permutation_round_trip_is_lexicographic(n):
    perms = list(itertools.permutations(range(n)))
    assert [label_of_permutation(p) for p in perms] == list(range(math.factorial(n)))
    assert [permutation_of_label(k, n) for k in range(math.factorial(n))] == perms


@settings(max_examples=200, deadline=None)
@given(perm=st.integers(2, 6).flatmap(lambda n: st.permutations(list(range(n)))))
def test_label_round_trip_property(perm):
    assert permutation_of_label(label_of_permutation(perm), len(perm)) == tuple(perm)


def test_labels_are_uniform_over_n_factorial_classes():
    task = PlaybackOrderTask(clip_len=4, clips=3)
    rng = np.random.default_rng(0)
    counts = np.bincount([task.sample(40, rng).labels["order"] for _ in range(3000)], minlength=6)
    assert counts.min() > 400 and task.heads == {"order": 6}


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="3 clips need 3 speeds"):
        PlaybackOrderTask(clips=3, speeds=(1, 2))
    with pytest.raises(ValueError, match="non-zero"):
        PlaybackOrderTask(clips=3, speeds=(0, 1, 2))
    with pytest.raises(ValueError, match="2..6"):
        PlaybackOrderTask(clips=7)
    with pytest.raises(ValueError, match="not a permutation"):
        label_of_permutation((0, 0, 1))
    with pytest.raises(ValueError, match="outside"):
        permutation_of_label(6, 3)


# --- time-symmetric ceilings -----------------------------------------------------------------


def test_time_symmetric_ceilings():
    assert [time_symmetric_ceiling(eq1_speeds(n), clips=n) for n in range(2, 7)] == [0.5, 1.0, 0.5, 1.0, 0.5]
    assert time_symmetric_ceiling((-3, 1, 3), clips=1) == pytest.approx(2 / 3)
    assert time_symmetric_ceiling((1, 3, 5), clips=1) == 1.0
    assert PlaybackOrderTask(clips=2).ceiling("order", time_symmetric=True) == 0.5
    assert PlaybackOrderTask(clips=2).ceiling("order", time_symmetric=False) is None
    assert PlaybackSpeedTask().ceiling("speed", time_symmetric=True) == pytest.approx(2 / 3)


# --- the pairwise head and the model ---------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 5])
def test_pairwise_head_shapes(n):
    head = PairwiseOrderHead(16, n, hidden=8, dropout=0.5)
    pairs = n * (n - 1) // 2
    assert head.fc7.in_features == 32 and head.fc8.in_features == 8 * pairs
    assert head([torch.randn(5, 16) for _ in range(n)]).shape == (5, math.factorial(n))
    with pytest.raises(ValueError, match=f"expected {n} clip features"):
        head([torch.randn(5, 16)] * (n + 1))


def test_pairwise_head_depends_on_slot_order():
    torch.manual_seed(0)
    head = PairwiseOrderHead(4, 3, hidden=8, dropout=0.0).eval()
    f = [torch.randn(2, 4) for _ in range(3)]
    assert not torch.allclose(head(f), head([f[1], f[0], f[2]]))


class CountingBackbone(torch.nn.Module):
    def __init__(self, dim: int = 6):
        super().__init__()
        self.feature_dim, self.calls, self.batch_sizes = dim, 0, []
        self.conv = torch.nn.Conv3d(3, dim, 3, padding=1)
        self.bn = torch.nn.BatchNorm3d(dim)

    def forward(self, x):
        self.calls += 1
        self.batch_sizes.append(x.shape[0])
        return self.bn(self.conv(x)).mean(dim=(2, 3, 4))


def _dataset(task, n_videos=4, frames=60, seed=7):
    counts = {f"/v/{i}.mp4": frames for i in range(n_videos)}
    return ClipDataset(sorted(counts), None, [frames] * n_videos, MemorySource(counts), task.sample, seed=seed,
                       min_frames=task.min_frames)


def test_all_clips_go_through_one_backbone_forward():
    task = PlaybackOrderTask(clip_len=4, clips=3)
    backbone = CountingBackbone()
    model = PretextModel(backbone, Joint({"pretext": task}))
    ds = _dataset(Joint({"pretext": task}))
    batch = BatchPreparer(crop_size=8)(collate([ds[(0, i)] for i in range(4)]), step=0)
    loss, metrics = model.training_step(batch)
    loss.backward()
    assert backbone.calls == 1 and backbone.batch_sizes == [12]  # 4 tuples x 3 clips, one forward
    assert {"pretext.order_acc", "pretext.order_loss", "loss"} <= set(metrics)


def _slot_speed(frames: torch.Tensor) -> list[int]:
    """The signed step a clip shows (MemorySource paints frame t as value 50 v + t)."""
    values = frames[:, :, 0, 0, 0].long()
    return [int(v[1] - v[0]) for v in values]


def test_order_labels_follow_the_rows_under_batch_reordering():
    task = PlaybackOrderTask(clip_len=4, clips=3)
    ds = _dataset(task)
    batch = collate([ds[(e, i)] for e in range(4) for i in range(4)])
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    labels = batch["labels"]["order"][perm]
    shown = list(zip(*[_slot_speed(batch["frames"][f"clip{p}"][perm]) for p in range(3)]))
    assert labels.tolist() == [label_of_slot_speeds(s) for s in shown]
    assert len(set(labels.tolist())) > 2


def test_speed_baseline_labels_follow_rows_and_names():
    task = PlaybackSpeedTask(clip_len=4)
    ds = _dataset(task)
    batch = collate([ds[(e, i)] for e in range(5) for i in range(4)])
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(1))
    labels = batch["labels"]["speed"][perm]
    assert [task.speeds[k] for k in labels.tolist()] == _slot_speed(batch["frames"]["clip"][perm])
    assert [label_name(task, "speed", k) for k in range(3)] == ["-3x", "+1x", "+3x"]
    assert task.heads == {"speed": 3}


def test_playback_order_composes_with_moco():
    torch.manual_seed(0)
    task = PlaybackOrderTask(clip_len=4, clips=3)
    joint = Joint({"pretext": task, "moco": MoCo(key_task=task.moco_key_task, query="pretext." + task.moco_query,
                                                 dim=4, queue_size=8)}, weights={"moco": 0.5})
    backbone = CountingBackbone()
    model = PretextModel(backbone, joint)
    ds = _dataset(joint)
    batch = BatchPreparer(crop_size=8)(collate([ds[(0, i)] for i in range(4)]), step=0)
    assert set(batch["clips"]) == {"pretext.clip0", "pretext.clip1", "pretext.clip2", "moco.key"}
    loss, metrics = model.training_step(batch)
    loss.backward()
    assert {"pretext.order_acc", "moco.acc"} <= set(metrics)
    assert backbone.batch_sizes[0] == 12  # the query is one of the tuple's clips: no extra forward


def test_make_task_builds_both():
    assert make_task("playback-order", clip_len=8, clips=4).heads == {"order": 24}
    assert make_task("playback-speed", clip_len=8).heads == {"speed": 3}
    assert make_task("playback-order", clip_len=8, clips=3, speeds=(3, -2, 1)).speeds == (-2, 1, 3)


def test_motion_energy_probe_takes_both_tasks():
    """The network-free floor reads every slot of a tuple (features side by side in slot order)."""
    from vsslkit.eval.probe import motion_energy_probe

    counts = {f"/v/{i}.mp4": 60 for i in range(6)}
    source = MemorySource(counts, size=(24, 24))
    paths = sorted(counts)
    for name, options in (("playback-order", {"clips": 2}), ("playback-speed", {})):
        out = motion_energy_probe(name, train=(paths[:4], [60] * 4), test=(paths[4:], [60] * 2), source=source,
                                  clip_len=4, crop_size=16, train_clips_per_video=4, test_clips_per_video=2, **options)
        head = "order" if name == "playback-order" else "speed"
        assert set(out["heads"]) == {head} and 0.0 <= out["heads"][head]["accuracy"] <= 1.0
        assert out["test_clips"] == 4


def test_tgn_group_frames_is_stored_only_when_not_the_default():
    """Checkpoints written before the field existed (no key) resume under the default g = 2."""
    from dataclasses import replace

    from vsslkit.train.loop import ResumeMismatchError, check_same_config
    from vsslkit.train.pretrain import PretrainConfig, build_pretext_model

    default = PretrainConfig(task="playback-order", norm="tgn", clip_len=8)
    assert "tgn_group_frames" not in default.to_json()
    check_same_config(default.to_json(), default.to_json(), "last.pt")
    g4 = replace(default, tgn_group_frames=4)
    assert g4.to_json()["tgn_group_frames"] == 4 and PretrainConfig.from_json(g4.to_json()) == g4
    assert PretrainConfig.from_json(default.to_json()) == default
    with pytest.raises(ResumeMismatchError, match="tgn_group_frames"):
        check_same_config(default.to_json(), g4.to_json(), "last.pt")
    groups = {m.num_groups_t for m in build_pretext_model(replace(g4, width=0.125)).backbone.modules()
              if hasattr(m, "num_groups_t")}
    assert groups == {2, 1}  # 8 frames: g = 4 gives 2 groups, then 1 as time shrinks


@pytest.mark.parametrize("argv, expected", [
    (["--task", "pace", "--clips", "3"], "vsslkit: --clips: only --task playback-order takes it, not --task pace"),
    (["--task", "arrow-of-time", "--speeds", "-3", "3"], "vsslkit: --speeds: only --task playback-order"),
    (["--task", "playback-order", "--clips", "3", "--speeds", "1", "2"], "3 clips need 3 speeds"),
    (["--task", "playback-order", "--clips", "3", "--speeds", "0", "1", "2"], "non-zero"),
])
def test_cli_bad_task_flags_are_one_line(argv, expected, tmp_path, capsys):
    from vsslkit.cli import main

    assert main(["pretrain", "--data", str(tmp_path / "nodata"), "--out", str(tmp_path / "run"), "--device", "cpu",
                 *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0] and "Traceback" not in err[0]


def test_order_n2_learns_when_the_direction_is_plainly_visible():
    """End to end (sampler -> collate -> residual crops -> one together forward -> pairwise head): on
    frames whose value is their index, n = 2 becomes perfect, so a wrong slot split or label fails it."""
    torch.manual_seed(0)

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.feature_dim = 8
            self.conv = torch.nn.Conv3d(3, 8, (2, 1, 1))
            self.bn = torch.nn.BatchNorm3d(8)

        def forward(self, x):
            return torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3, 4))

    task = Joint({"pretext": PlaybackOrderTask(clip_len=4, clips=2, extra_frames=1)})
    ds = _dataset(task, n_videos=16)
    model = PretextModel(Tiny(), task)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    prepare = BatchPreparer(crop_size=8, residual=True)
    accs = []
    for step in range(120):
        loss, metrics = model.training_step(prepare(collate([ds[(step, i)] for i in range(16)]), step=step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        accs.append(metrics["pretext.order_acc"])
    assert np.mean(accs[:5]) < 0.8 and np.mean(accs[-20:]) > 0.85  # chance is 0.5
