"""Seed 001 from scratch: l_cls + w1 l_track + w2 l_dir on one trunk. Labels stay with their rows
under any batch reordering, weights of 0 remove branches, a run trains, saves, reloads and is
scored (non-overlapping clips, Hit@k, direction accuracy), and the same seed gives the same run."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from test_clips import MemorySource

from vsslkit.data.clips import ClipDataset, collate
from vsslkit.eval.video_level_clips import non_overlapping_plans
from vsslkit.models.resnet50_inflated import InflatedResNet50Conv5
from vsslkit.train.from_scratch import (
    FromScratchConfig,
    build_joint,
    direction_accuracy,
    load_from_scratch,
    train_from_scratch,
)

torch.set_num_threads(1)


def _painted(frames: torch.Tensor) -> np.ndarray:
    """(B, K) frame values painted by MemorySource: (50 v + t) % 256."""
    return frames[:, :, 0, 0, 0].long().numpy()


def test_labels_survive_any_reordering_of_a_joint_batch():
    counts = {f"/v/{i}.mp4": 60 + i for i in range(6)}
    paths = sorted(counts)
    labels = [3, 1, 4, 1, 5, 0]
    joint = build_joint(FromScratchConfig(num_classes=6, size=16))
    assert set(joint.tasks) == {"cls", "track", "dir"} and joint.weights == {"cls": 1.0, "track": 25.0, "dir": 2.0}
    ds = ClipDataset(paths, labels, [counts[p] for p in paths], MemorySource(counts), joint.sample, seed=5,
                     min_frames=joint.min_frames)
    batch = collate([ds[(e, i)] for e in range(3) for i in range(6)])
    perm = torch.randperm(18, generator=torch.Generator().manual_seed(1))
    video = batch["video"][perm]
    cls_frames, dir_frames = batch["frames"]["cls.clip"][perm], batch["frames"]["dir.clip"][perm]
    assert batch["labels"]["class"][perm].tolist() == [labels[v] for v in video.tolist()]
    painted = _painted(dir_frames)
    assert batch["labels"]["dir.direction"][perm].tolist() == [int((row[1] - row[0]) % 256 == 255) for row in painted]
    assert 0 < batch["labels"]["dir.direction"].sum() < 18
    assert (np.diff(_painted(cls_frames), axis=1) % 256 == 1).all()  # the classification clip is never reversed
    assert (np.diff(_painted(batch["frames"]["track.clip"]), axis=1) % 256 == 4).all()  # frames 0, 4, 8, 12
    assert batch["extras"]["track.draw"].shape == (18, 4)


@pytest.mark.parametrize(("w1", "w2", "branches"), [(0, 0, {"cls"}), (25, 0, {"cls", "track"}),
                                                     (0, 2, {"cls", "dir"}), (50, 8, {"cls", "track", "dir"})])
def test_zero_weight_removes_a_branch(w1, w2, branches):
    joint = build_joint(FromScratchConfig(num_classes=4, track_weight=w1, direction_weight=w2))
    assert set(joint.tasks) == branches


def test_conv5_trunk_shapes():
    net = InflatedResNet50Conv5(width=0.125, conv5_units=1)
    maps = net.features(torch.zeros(1, 3, 13, 64, 64), layers=("pool4", "pool5"))
    assert maps["pool4"].shape == (1, 128, 13, 8, 8)  # res4: no temporal downsampling
    assert maps["pool5"].shape == (1, 256, 4, 2, 2)  # pool + conv5: time 13 -> 7 -> 4
    assert net(torch.zeros(2, 3, 8, 64, 64)).shape == (2, net.feature_dim)


def test_non_overlapping_plans():
    plans = non_overlapping_plans(50, 8)
    assert len(plans) == 6
    starts = [int(p.indices[0]) for p in plans]
    assert all(b - a >= 8 for a, b in itertools.pairwise(starts)) and int(plans[-1].indices[-1]) == 49


def test_run_trains_reloads_scores_and_repeats(tmp_path):
    counts = {f"/v/{i}.mp4": 40 for i in range(6)}
    paths = sorted(counts)
    source = MemorySource(counts, size=(20, 20))
    config = FromScratchConfig(num_classes=3, size=16, clip_len=4, batch_size=3, width=0.0625)
    kwargs = {"paths": paths, "labels": [0, 1, 2, 0, 1, 2], "num_frames": [40] * 6, "source": source, "steps": 2,
                  "progress": False, "checkpoint_every": 1}
    model, result = train_from_scratch(config, out_dir=tmp_path / "a", **kwargs)
    _, again = train_from_scratch(config, out_dir=tmp_path / "b", **kwargs)
    assert result.steps == 2 and result.final_loss == again.final_loss
    assert {"cls.class_loss", "track.long", "dir.direction_acc"} <= set(result.history[-1])
    loaded, stored = load_from_scratch(result.checkpoint)
    assert stored == config
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    scores = direction_accuracy(loaded, paths, [40] * 6, source, clip_len=4, size=16, clips_per_video=4)
    assert scores["direction_clips"] == 24 and 0 <= scores["direction_accuracy"] <= 1
    assert 0 < scores["backward_fraction"] < 1


class _PaintedClassifier(torch.nn.Module):
    """Reads MemorySource's painted video index (frame value // 50) and scores classes from it:
    video v -> class v, except video 2, whose class comes second (a Hit@2 but not a Hit@1)."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        video = ((x[:, 0, 0, 0, 0] * 0.229 + 0.485) * 255).round().long() // 50  # undo the ImageNet normalisation
        logits = torch.nn.functional.one_hot(video.clamp(max=2), 3).float() * 2
        logits[video == 2] = torch.tensor([0.0, 1.0, 0.5])
        return {"class": logits}


def test_video_scores_over_non_overlapping_clips_and_hit_at_k():
    from vsslkit.eval.video_level_clips import fit_to, video_scores

    counts = {f"/v/{i}.mp4": n for i, n in enumerate([20, 33, 16, 3])}
    paths = sorted(counts)
    out = video_scores(_PaintedClassifier(), paths, [0, 1, 2, 0], [counts[p] for p in paths],
                       MemorySource(counts, size=(20, 20)), clip_len=4, size=8, num_classes=3)
    assert out["videos"] == 3 and out["clips"] == 5 + 8 + 4 and len(out["unscored"]) == 1
    assert out["hit_at_1"] == pytest.approx(2 / 3) and out["hit_at_5"] == 1.0
    assert np.asarray(out["confusion_counts"]).sum() == 3
    assert fit_to(torch.zeros(2, 3, 20, 30, 3, dtype=torch.uint8), 8).shape == (2, 3, 8, 8, 3)


@pytest.mark.slow
def test_train_joint_command_end_to_end(tmp_path, capsys):
    import json

    from vsslkit.cli import main
    from vsslkit.data.synthetic import make_synthetic

    data = make_synthetic(tmp_path / "syn", videos_per_class=7, size=32, length_range=(24, 32), progress=False)
    common = ["--data", str(data), "--store", str(tmp_path / "store"), "--short-side", "32", "--size", "32",
              "--clip-len", "4", "--width", "0.0625", "--batch-size", "4", "--device", "cpu", "--no-progress"]
    assert main(["train-joint", "--steps", "2", "--out", str(tmp_path / "run"), *common]) == 0
    printed = capsys.readouterr().out
    assert "test: Hit@1" in printed and "direction accuracy" in printed and "grouped confusion" in printed
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["steps"] == 2 and result["config"]["track_weight"] == 25.0
    assert {"classification", "direction"} <= set(result)
    assert ("tracking" in result) != ("tracking_not_scored" in result)
    assert main(["train-joint", "--steps", "1", "--out", str(tmp_path / "bad"), *common[2:],
                 "--data", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
