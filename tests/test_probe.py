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
