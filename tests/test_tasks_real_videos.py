"""Every speed-family pretext task takes two optimizer steps on the real labelled clips.

Real videos have odd codecs, sizes, rotations and lengths (48 to 420 frames, one GIF); this
checks the whole path frame store → task plans → ClipDataset → fit on them, and that a video
too short for a task is skipped and reported by name exactly when `task.min_frames` says so.
The store is built once per module (short side 64); clips are 8 residual frames of 32 px.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from vsslkit.train.pretrain import MoCoConfig, PretrainConfig, build_task, pretrain

torch.set_num_threads(1)

# (id, PretrainConfig overrides). The last case uses speeds up to 10 so that the short clips
# (the 48-74-frame HMDB51 clips and the 79-frame GIF) are too short and must be reported.
CASES = [
    ("pace", {"task": "pace"}),
    ("speed-change-coarse", {"task": "speed-change-coarse"}),
    ("speed-change-fine", {"task": "speed-change-fine"}),
    ("fine+contrastive", {"task": "speed-change-fine", "moco": MoCoConfig(queue_size=16)}),
    ("none+contrastive", {"task": "none", "moco": MoCoConfig(queue_size=16)}),
    ("coarse+same-batch", {"task": "speed-change-coarse", "same_batch": True}),
    ("pace-fast", {"task": "pace", "task_options": {"speeds": (1, 5, 10)}}),
]


@pytest.fixture(scope="module")
def labeled(real_videos, tmp_path_factory):
    """The labelled real clips with frame counts from a frame store built once (short side 64)."""
    from vsslkit.data.datasets import open_dataset
    from vsslkit.data.store import FrameStore

    store = FrameStore(tmp_path_factory.mktemp("real_store"), short_side=64)
    index, unreadable = open_dataset(real_videos / "labeled").with_frame_counts(store)
    assert unreadable == [], f"labelled real videos should all decode: {unreadable}"
    return index, store


@pytest.mark.parametrize("overrides", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_task_trains_two_steps_on_real_clips(labeled, overrides, tmp_path):
    index, store = labeled
    config = PretrainConfig(width=0.125, clip_len=8, size=32, residual=True, batch_size=4, seed=0, **overrides)
    min_frames = build_task(config).min_frames
    too_short = {Path(p).name for p, n in zip(index.paths, index.num_frames) if n < min_frames}
    lines: list[str] = []
    _, result = pretrain(config, paths=index.paths, num_frames=index.num_frames, source=store, out_dir=tmp_path,
                         max_steps=2, progress=False, log_every=1, checkpoint_every=None, report=lines.append)
    assert result.steps == 2 and math.isfinite(result.final_loss) and not result.failures
    report = "\n".join(lines)
    reported = {Path(p).name for p in index.paths if Path(p).name in report}
    assert reported == too_short, f"min_frames {min_frames}: reported {reported}, expected {too_short}"
    if too_short:
        assert f"skipped {len(too_short)} videos too short" in report and f"needs {min_frames} frames" in report
    gif = next(n for p, n in zip(index.paths, index.num_frames) if Path(p).suffix == ".gif")
    assert ("v_CricketShot_g04_c01_rgb.gif" in report) == (gif < min_frames)
    if overrides.get("task_options"):  # the case built to exercise the report really does
        assert "v_CricketShot_g04_c01_rgb.gif" in too_short
