"""Seed 003 as a task: flow travels with the clip and is augmented like it, the three targets,
the curriculum sampler, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_flow_cache import textured_square

from vsslkit.data import transforms as T
from vsslkit.data.clips import BatchPreparer, ClipDataset, EpochSampler, collate
from vsslkit.data.curriculum import CurriculumSampler, easy_half, switch_epoch
from vsslkit.data.flow_cache import FlowCache
from vsslkit.data.store import FrameStore
from vsslkit.data.writer import write_video
from vsslkit.models import build_backbone
from vsslkit.plans import IGNORE_INDEX
from vsslkit.tasks import make_task
from vsslkit.tasks.model import PretextModel
from vsslkit.tasks.statistics import StatisticsTask, to_uint8_frames, video_difficulty
from vsslkit.tasks.statistics_labels import LABELS, clip_labels


def test_flow_is_cropped_resampled_and_flipped_like_the_frames():
    """A marker drawn both in the frames (brightness 100) and in the flow's u (1 px/frame) must
    land at the same output pixels, u negated on flipped clips and scaled by the zoom."""
    rng = np.random.default_rng(0)
    marker = np.zeros((6, 40, 52), dtype=np.float32)
    marker[:, 10:22, 5:13] = 1.0
    frames = torch.from_numpy(np.repeat((100 * marker[None, :, :, :, None]).astype(np.uint8), 3, axis=-1)).repeat(6, 1, 1, 1, 1)
    flow = torch.zeros(6, 5, 40, 52, 2)
    flow[..., 0] = torch.from_numpy(marker[:5])
    flow[..., 1] = 0.5 * torch.from_numpy(marker[:5])
    out, params = T.random_crop_flip(frames, 32, torch.Generator().manual_seed(int(rng.integers(1000))), return_params=True)
    assert params["flip"].any() and not params["flip"].all()
    f = T.crop_flip_flow(flow, params, 32)
    gain = 32 / params["box"][:, 2].float()
    sign = torch.where(params["flip"], -1.0, 1.0)
    expect_u = out[:, :5, :, :, 0].float() / 100 * (sign * gain).view(6, 1, 1, 1)
    assert torch.allclose(f[..., 0], expect_u, atol=0.02 * 32 / 24)  # frames were rounded to uint8
    assert torch.allclose(f[..., 1], out[:, :5, :, :, 0].float() / 200 * gain.view(6, 1, 1, 1), atol=0.02)
    centre = T.crop_flip_flow(flow, None, 32)
    assert torch.equal(centre, flow[:, :, 4:36, 10:42])


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("sts")
    paths = [write_video(root / f"v{i}.mp4", textured_square(num_frames=20, size=64, step=s, seed=i), crf=0)
             for i, s in enumerate([(1, 0), (-1, 0), (0, 1), (1, 1)])]
    store = FrameStore(root / "store", short_side=64)
    flow = FlowCache(store)
    flow.build(paths, progress=False)
    return paths, store, flow


def _batch(videos, task, *, train=True, step=0, flip=True):
    paths, store, flow = videos
    data = ClipDataset(paths, None, [20] * 4, store, task.sample, seed=3, min_frames=task.min_frames, flow=flow,
                       flow_clips=task.flow_clips)
    raw = collate([data[i] for i in range(4)])
    assert raw["flow"]["clip"].shape == (4, 7, 64, 64, 2)
    return raw, BatchPreparer(crop_size=56, flip=flip, seed=1)(raw, step=step, train=train)


def test_pixel_labels_come_from_the_augmented_clip_and_flow(videos):
    task = StatisticsTask(clip_len=8)
    raw, batch = _batch(videos, task)
    aug = batch["augment"]["clip"]
    assert aug["flow"].shape == (4, 7, 56, 56, 2)
    labels = task.pixel_labels(batch["clips"], batch["labels"], batch["augment"])
    frames = to_uint8_frames(batch["clips"]["clip"])
    expected = clip_labels(frames, aug["flow"].numpy())
    for name in LABELS:
        np.testing.assert_array_equal(labels[name].numpy(), expected[name], err_msg=name)
    # the flipped clips' u flows point the other way: compare with the flow cropped without flipping
    unflipped = T.crop_flip_flow(raw["flow"]["clip"], {"box": aug["box"], "flip": torch.zeros(4, dtype=torch.bool)}, 56)
    assert aug["flip"].any()
    for i in range(4):
        plain = unflipped[i, ..., 0].numpy()
        expect = -plain[:, :, ::-1] if aug["flip"][i] else plain
        np.testing.assert_allclose(aug["flow"][i, ..., 0].numpy(), expect, atol=1e-4)
    # eval batches get the centre crop's flow
    _, evaluated = _batch(videos, task, train=False)
    assert evaluated["augment"]["clip"]["flow"].shape == (4, 7, 56, 56, 2)
    with pytest.raises(ValueError, match="optical flow"):
        task.pixel_labels(batch["clips"], batch["labels"], {"clip": {"box": aug["box"]}})


@pytest.mark.parametrize("targets", ["classification", "1d", "2d"])
def test_every_target_trains(videos, targets):
    torch.manual_seed(0)
    task = make_task("statistics", clip_len=8, targets=targets)
    model = PretextModel(build_backbone("r3d_10", width=0.125), task)
    _, batch = _batch(videos, task)
    loss, metrics = model.training_step(batch)
    loss.backward()
    assert torch.isfinite(loss) and metrics["loss"] == pytest.approx(float(loss.detach()), rel=1e-5)
    accs = [metrics[f"{n}_acc"] for n in LABELS if not np.isnan(metrics[f"{n}_acc"])]
    assert metrics["acc"] == pytest.approx(np.mean(accs))  # the paper's pretext accuracy: mean of exact matches
    grads = [p.grad for p in model.head.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_loss_weights_and_ignored_labels():
    task = StatisticsTask(clip_len=8)
    torch.manual_seed(0)
    outputs = {n: torch.randn(3, c) for n, c in task.heads.items()}
    labels = {n: torch.randint(0, c, (3,)) for n, c in task.heads.items()}
    total, metrics = task.loss(outputs, labels)
    manual = sum((1.0 if n.startswith("m") else 0.1) * metrics[f"{n}_loss"] for n in task.heads)
    assert float(total) == pytest.approx(manual, rel=1e-5)
    labels["m1_pu"][:] = IGNORE_INDEX
    _, metrics = task.loss(outputs, labels)
    assert np.isnan(metrics["m1_pu_acc"]) and not np.isnan(metrics["acc"])
    only = StatisticsTask(clip_len=8, groups=("m1", "mg"))
    assert list(only.heads) == ["m1_pu", "m1_ou", "m1_pv", "m1_ov", "m_Iu", "m_Iv"]
    with pytest.raises(ValueError, match="groups"):
        StatisticsTask(groups=("m4",))
    with pytest.raises(ValueError, match="residual"):
        StatisticsTask(extra_frames=1)


def test_curriculum_sampler_orders_easy_first_and_resumes():
    scores = [0.1, 0.9, 0.5, 0.7, 0.2, 0.8]
    easy = easy_half(scores)
    assert easy.tolist() == [1, 3, 5]
    sampler = CurriculumSampler(6, easy=easy, switch_epoch=2, seed=4)
    for epoch in (0, 1):
        assert set(sampler.indices(epoch).tolist()) <= {1, 3, 5} and len(sampler.indices(epoch)) == 6
    assert sorted(sampler.indices(2).tolist()) == list(range(6))
    np.testing.assert_array_equal(sampler.indices(3), EpochSampler(6, seed=4).indices(3))
    sampler.set_epoch(1)
    first = list(sampler)
    resumed = CurriculumSampler(6, easy=easy, switch_epoch=2, seed=4)
    resumed.load_state_dict({**sampler.state_dict(2), "epoch": 1})
    assert list(resumed) == first[2:]
    assert switch_epoch(0.5, total_steps=100, steps_per_epoch=10) == 5 and switch_epoch(0.0, 100, 10) == 0


def test_video_difficulty_ranks_one_object_above_none(videos, tmp_path):
    paths, _, flow = videos
    still = write_video(tmp_path / "still.mp4", np.repeat(textured_square(20, 64)[:1], 20, axis=0), crf=0)
    f = video_difficulty(flow, [paths[0], still], [20, 20], clip_len=8, size=56)
    assert f[0] > 0.1 and f[1] == 0.0


def test_cli_pretrain_pretext_eval_and_evaluate(tmp_path, capsys):
    """`pretrain --task statistics --targets 1d --curriculum`, then `pretext-eval --probe` (per-label
    accuracy, majority, probe) and `evaluate --layers pool4` on the checkpoint."""
    import json

    from vsslkit.cli import main
    from vsslkit.data.synthetic import make_synthetic

    root = make_synthetic(tmp_path / "syn", videos_per_class=7, size=32, length_range=(16, 20), progress=False,
                          workers=2)
    common = ["--data", str(root), "--store", str(tmp_path / "store"), "--short-side", "32"]
    assert main(["pretrain", "--task", "statistics", "--targets", "1d", "--curriculum", "0.5", *common,
                 "--out", str(tmp_path / "run"), "--steps", "2", "--backbone", "r3d_10", "--width", "0.125",
                 "--clip-len", "8", "--size", "32", "--batch-size", "4", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "curriculum:" in out and "pretext.acc" in out
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    assert main(["pretext-eval", "--checkpoint", str(ckpt), *common, "--clips-per-video", "1", "--probe",
                 "--out", str(tmp_path / "eval.json")]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["targets"] == "1d" and set(result["labels"]) <= set(LABELS) and len(result["labels"]) > 20
    assert all(0 <= v["accuracy"] <= 1 and v["majority"] > 0 for v in result["labels"].values())
    assert "probe" in result["labels"]["m1_pu"]
    assert "mean motion" in capsys.readouterr().out
    assert main(["evaluate", "--checkpoint", str(ckpt), *common, "--layers", "pool4", "--clips-per-video", "2",
                 "--svm-videos", "8", "--pairs", "20", "--folds", "2", "--out-dir", str(tmp_path / "ev")]) == 0
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["pair_similarity.json", "retrieval_pool4.json",
                                                                  "svm_loo_pool4.json"]
    assert main(["bench", "labels", "--data", str(root), "--store", str(tmp_path / "bench"), "--clips", "32"]) == 0
    out = capsys.readouterr().out
    assert "27 labels, flow cached" in out and "labels / flow computation:" in out and "goal >= 500 clips/s" in out


def test_grid_head_keeps_the_layout_that_pooling_loses():
    """`head="grid"`: the heads read a 4 x 4 grid of the last map, so moving a blob across the map
    changes their outputs; the pooled head cannot tell the two maps apart (why the location labels
    stay at chance with it). `--stat-head grid` reaches the task."""
    import argparse

    from vsslkit.commands.common import UsageError, task_options

    class Maps:  # a `Features` whose last map is given
        def __init__(self, x: torch.Tensor):
            self.x = x

        def maps(self, name: str, layer: str) -> torch.Tensor:
            assert (name, layer) == ("clip", "pre_pool")
            return self.x

        def pooled(self, name: str) -> torch.Tensor:
            return self.x.mean(dim=(2, 3, 4))

    backbone = build_backbone("r3d_10", width=0.125)
    left, right = torch.zeros(2, backbone.feature_dim, 1, 4, 4), torch.zeros(2, backbone.feature_dim, 1, 4, 4)
    left[..., 1, 0], right[..., 1, 3] = 1.0, 1.0
    torch.manual_seed(0)
    pooled, grid = StatisticsTask(), StatisticsTask(head="grid")
    head = pooled.make_module(backbone)
    a, b = (head(Maps(x)) for x in (left, right))
    assert torch.equal(a["m1_pu"], b["m1_pu"])
    head = grid.make_module(backbone)
    a, b = (head(Maps(x)) for x in (left, right))
    assert not torch.allclose(a["m1_pu"], b["m1_pu"]) and a["m1_pu"].shape == (2, 16)
    model = PretextModel(backbone, make_task("statistics", clip_len=8, head="grid"))
    assert model.head(Maps(torch.randn(3, backbone.feature_dim, 1, 2, 2)))["a_C"].shape == (3, 8)
    with pytest.raises(ValueError, match="head must be"):
        StatisticsTask(head="spatial")
    args = argparse.Namespace(task="statistics", speed_pool=None, sampling=None, stat_head="grid")
    assert task_options(args) == {"head": "grid"}
    with pytest.raises(UsageError):
        task_options(argparse.Namespace(task="pace", speed_pool=None, sampling=None, stat_head="grid"))


def test_residual_input_for_motion_groups_reads_one_frame_more_and_labels_from_its_flow(videos):
    """Motion-only groups allow frame differences: the plan reads clip_len + 1 frames, the network
    sees clip_len differences, the motion labels come from the clip_len flows between those frames
    (the global largest-motion frame then has clip_len classes); appearance refuses it."""
    with pytest.raises(ValueError, match="motion groups only"):
        StatisticsTask(clip_len=8, extra_frames=1)
    with pytest.raises(ValueError, match="motion groups only"):
        make_task("statistics", clip_len=8, extra_frames=1, groups=("m1", "a1"))
    task = make_task("statistics", clip_len=8, extra_frames=1, groups=("m1", "m2", "m3", "mg"))
    assert task.input_frames == task.min_frames == 9 and task.heads["m_Iu"] == 8 and task.heads["m1_pu"] == 16
    assert len(task.sample(20, np.random.default_rng(0)).plans["clip"].indices) == 9
    paths, store, flow = videos
    data = ClipDataset(paths, None, [20] * 4, store, task.sample, seed=3, min_frames=task.min_frames, flow=flow,
                       flow_clips=task.flow_clips)
    raw = collate([data[i] for i in range(4)])
    batch = BatchPreparer(crop_size=56, residual=True, seed=1)(raw, step=0)
    assert batch["clips"]["clip"].shape == (4, 3, 8, 56, 56) and batch["augment"]["clip"]["flow"].shape == (4, 8, 56, 56, 2)
    labels = task.pixel_labels(batch["clips"], batch["labels"], batch["augment"])
    expected = clip_labels(None, batch["augment"]["clip"]["flow"].numpy(), appearance=False)
    assert sorted(set(labels) - {"class"}) == sorted(expected) == sorted(task.labels)
    for name in task.labels:
        np.testing.assert_array_equal(labels[name].numpy(), expected[name], err_msg=name)
    assert (labels["m_Iu"][labels["m_Iu"] != IGNORE_INDEX] < 8).all()
    model = PretextModel(build_backbone("r3d_10", width=0.125), task)
    loss, metrics = model.training_step({**batch, "labels": labels})
    loss.backward()
    assert torch.isfinite(loss) and {k[:-4] for k in metrics if k.endswith("_acc") and k[:2] in ("m1", "m2", "m3", "m_")} == set(task.labels)


def test_motion_labels_need_no_frames():
    rng = np.random.default_rng(0)
    flow = rng.normal(size=(3, 5, 32, 32, 2)).astype(np.float32)
    frames = rng.integers(0, 255, size=(3, 6, 32, 32, 3), dtype=np.uint8)
    with_frames = clip_labels(frames, flow, appearance=False)
    without = clip_labels(None, flow, appearance=False)
    assert sorted(with_frames) == sorted(without) and all(np.array_equal(with_frames[k], without[k]) for k in without)
    with pytest.raises(ValueError, match="appearance labels need the frames"):
        clip_labels(None, flow)


def test_cli_stat_groups_with_residual(tmp_path, capsys):
    """`--stat-groups` reaches the task; with --residual only motion groups are accepted (one line, exit 2);
    `pretext-eval` feeds the residual checkpoint differences and scores its labels."""
    import json

    from vsslkit.cli import main
    from vsslkit.data.synthetic import make_synthetic

    root = make_synthetic(tmp_path / "syn", videos_per_class=7, size=32, length_range=(16, 20), progress=False,
                          workers=2)
    common = ["--data", str(root), "--store", str(tmp_path / "store"), "--short-side", "32"]
    run = ["pretrain", "--task", "statistics", *common, "--steps", "2", "--backbone", "r3d_10", "--width", "0.125",
           "--clip-len", "8", "--size", "32", "--batch-size", "4", "--no-progress", "--residual"]
    assert main([*run, "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "motion groups only" in err[0]
    assert main(["pretrain", "--task", "pace", *common, "--stat-groups", "m1", "--out", str(tmp_path / "x")]) == 2
    assert "--stat-groups" in capsys.readouterr().err
    assert main([*run, "--stat-groups", "m1", "mg", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "pretext.m1_pu_acc" in out and "pretext.a1_cl_acc" not in out
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    assert main(["pretext-eval", "--checkpoint", str(ckpt), *common, "--clips-per-video", "1",
                 "--out", str(tmp_path / "eval.json")]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert set(result["labels"]) == {"m1_pu", "m1_ou", "m1_pv", "m1_ov", "m_Iu", "m_Iv"}
    assert result["labels"]["m_Iu"]["classes"] == 8
