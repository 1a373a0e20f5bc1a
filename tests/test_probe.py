"""vsslkit.eval.probe and `vsslkit pretext-probe`: the network-free motion-energy floor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vsslkit.cli import main
from vsslkit.eval.probe import motion_energy, motion_energy_probe


def test_motion_energy_is_the_mean_absolute_residual_per_element_and_its_profile():
    clips = torch.zeros(2, 3, 4, 5, 5)
    clips[0, :, 2:] = 0.5  # a clip whose motion doubles halfway
    clips[0, :, :2] = 0.25
    clips[1] = -0.1  # sign does not matter
    features = motion_energy(clips)
    assert features.shape == (2, 8)
    assert np.allclose(features[0, :4], [0.25, 0.25, 0.5, 0.5]) and np.allclose(features[1, :4], 0.1)
    assert np.allclose(features[0, 4:], [2 / 3, 2 / 3, 4 / 3, 4 / 3]) and np.allclose(features[1, 4:], 1.0)
    with pytest.raises(ValueError, match="expected clips"):
        motion_energy(torch.zeros(3, 4))


class Strides:
    """Frames whose content is the frame index itself: residual energy = stride, exactly."""

    def read(self, path, indices):
        return np.broadcast_to(np.asarray(indices, np.uint8)[:, None, None, None] * 3, (len(indices), 8, 8, 3)).copy()


def test_probe_solves_a_task_whose_signal_is_pure_motion_energy():
    paths, frames = [f"v{i}.mp4" for i in range(30)], [80] * 30
    result = motion_energy_probe("speed-change-fine", train=(paths, frames), test=(paths[:10], frames[:10]),
                                 source=Strides(), clip_len=8, crop_size=8, train_clips_per_video=6,
                                 test_clips_per_video=6)
    assert result["train_clips"] == 180 and result["test_clips"] == 60 and not result["skipped"]
    assert result["heads"]["speed"]["accuracy"] == 1.0 and result["heads"]["loc"]["accuracy"] == 1.0
    assert result["heads"]["loc"]["chance"] == pytest.approx(1 / 5)
    with pytest.raises(ValueError, match="no pretext labels"):
        motion_energy_probe("none", train=(paths, frames), test=(paths, frames), source=Strides())


def test_probe_is_at_chance_when_motion_energy_says_nothing():
    class Noise:
        def read(self, path, indices):
            rng = np.random.default_rng([int(str(path)[1:-4]), *map(int, indices)])  # independent of the stride
            return rng.integers(0, 255, (len(indices), 8, 8, 3), dtype=np.uint8)

    paths, frames = [f"v{i}.mp4" for i in range(60)], [80] * 60
    result = motion_energy_probe("pace", train=(paths[:40], frames[:40]), test=(paths[40:], frames[40:]),
                                 source=Noise(), clip_len=8,
                                 crop_size=8, train_clips_per_video=4, test_clips_per_video=4)
    assert result["heads"]["speed"]["accuracy"] < 0.45  # 4 classes: chance 25 %, the solvable case gets 100 %


@pytest.mark.slow
def test_cli_on_both_cameras(tmp_path, capsys):
    for camera in ("smooth", "white"):
        root = tmp_path / camera
        assert main(["data", "synthetic", "--out", str(root), "--videos-per-class", "7", "--size", "32",
                     "--min-length", "40", "--max-length", "48", "--camera", camera, "--no-progress"]) == 0
        assert main(["pretext-probe", "--data", str(root), "--store", str(tmp_path / "store"), "--short-side", "32",
                     "--size", "24", "--train-clips-per-video", "2", "--test-clips-per-video", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("| loc |") == 2 and "scored on 56 clips of the test videos" in out


class Events:
    """Blobs that switch on at random times: `irreversible` ones jump on and decay (like a drop of
    ink), symmetric ones rise and decay alike (a film that plays the same both ways)."""

    def __init__(self, irreversible: bool):
        self.irreversible = irreversible

    def read(self, path, indices):
        rng = np.random.default_rng(int(str(path)[1:-4]))
        births = rng.uniform(-20, 100, size=40)
        cells = rng.integers(0, 4, size=(40, 2))
        amplitude = rng.choice([-60.0, 60.0], size=40)
        frames = np.full((len(indices), 16, 16), 128.0)
        for i, t in enumerate(indices):
            age = t - births
            weight = np.exp(-np.abs(age) / 4.0) * (age >= 0 if self.irreversible else 1.0)
            for (r, c), a, w in zip(cells, amplitude, weight):
                frames[i, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += a * w
            frames[i] += np.random.default_rng([int(str(path)[1:-4]), int(t)]).normal(0, 3, size=(16, 16))
        return np.repeat(np.clip(frames, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


@pytest.mark.parametrize("irreversible", [True, False])
def test_arrow_of_time_probe_sees_irreversible_change_and_only_that(irreversible):
    paths, frames = [f"v{i}.mp4" for i in range(50)], [80] * 50
    result = motion_energy_probe("arrow-of-time", train=(paths[:30], frames[:30]), test=(paths[30:], frames[30:]),
                                 source=Events(irreversible), clip_len=8, crop_size=16, train_clips_per_video=8,
                                 test_clips_per_video=8)
    head = result["heads"]["direction"]
    assert result["test_clips"] == 160 and head["chance"] == 0.5 and 0.4 < head["majority"] < 0.6
    if irreversible:
        assert head["accuracy"] >= 0.9
    else:
        assert head["accuracy"] <= 0.62


def test_arrow_of_time_labels_and_features_flip_with_time():
    from vsslkit.eval.probe import direction_features
    from vsslkit.tasks import ArrowOfTimeTask

    task = ArrowOfTimeTask(clip_len=9, speeds=(1, 2))  # the probe's sampler is the task's
    samples = [task.sample(60, np.random.default_rng(s)) for s in range(200)]
    for sample in samples:
        plan, label = sample.plan, sample.labels["direction"]
        steps = np.diff(plan.indices)
        assert len(plan) == 9 and plan.kind == "constant" and len(set(steps)) == 1 and abs(steps[0]) in (1, 2)
        assert label == int(steps[0] < 0) == int(plan.params["reverse"])
    assert 0.35 < np.mean([s.labels["direction"] for s in samples]) < 0.65
    clips = torch.randn(3, 3, 9, 16, 16)
    forward, backward = direction_features(clips), direction_features(clips.flip(2))
    assert forward.shape == (3, 14)
    q_means, q_shares = [2, 5, 8], [1, 4, 7]  # per lag: mean over cells negates, share of positive cells mirrors
    assert np.allclose(backward[:, q_means], -forward[:, q_means], atol=1e-5)
    assert np.allclose(backward[:, q_shares], 1 - forward[:, q_shares], atol=1e-5)
    assert np.allclose(backward[:, 11], -forward[:, 11], atol=1e-4)  # change of the mean grey level
    with pytest.raises(ValueError, match="expected clips"):
        direction_features(torch.zeros(1, 3, 3, 8, 8))
    paths = ["v0.mp4"]
    with pytest.raises(ValueError, match="strides >= 1"):
        motion_energy_probe("arrow-of-time", train=(paths, [80]), test=(paths, [80]), source=Events(True), speeds=(0,))
    with pytest.raises(ValueError, match="strides >= 1"):
        motion_energy_probe("arrow-of-time", train=(paths, [80]), test=(paths, [80]), source=Events(True), pool=(1, 2))


@pytest.mark.slow
def test_cli_arrow_of_time_on_version_3(tmp_path, capsys):
    root = tmp_path / "v3"
    assert main(["data", "synthetic", "--out", str(root), "--videos-per-class", "7", "--size", "32",
                 "--min-length", "40", "--max-length", "48", "--version", "3", "--no-progress"]) == 0
    assert main(["pretext-probe", "--data", str(root), "--store", str(tmp_path / "store"), "--short-side", "32",
                 "--size", "24", "--task", "arrow-of-time", "--speed-pool", "1", "2", "--train-clips-per-video", "2",
                 "--test-clips-per-video", "2"]) == 0
    out = capsys.readouterr().out
    assert "generator version 3" in out and "| direction |" in out and "scored on 56 clips of the test videos" in out
    assert main(["pretext-probe", "--data", str(root), "--store", str(tmp_path / "store"), "--short-side", "32",
                 "--size", "24", "--task", "arrow-of-time", "--sampling", "class"]) == 2
    assert "error: --task arrow-of-time:" in capsys.readouterr().err
