"""vsslkit.train.pretrain: config round trip, the contrastive-only task, a tiny end-to-end run."""

import numpy as np
import pytest
import torch

from vsslkit.tasks import make_task
from vsslkit.train.checkpoint import load_checkpoint
from vsslkit.train.pretrain import (
    MoCoConfig,
    PretrainConfig,
    build_pretext_model,
    build_task,
    config_from_checkpoint,
    pretrain,
)


class ArrayFrames:
    """In-memory frame source: random noise with a moving bright square."""

    def __init__(self, n_videos=4, n_frames=60, size=24):
        rng = np.random.default_rng(0)
        self.videos = {}
        for v in range(n_videos):
            frames = rng.integers(0, 60, (n_frames, size, size, 3), dtype=np.uint8)
            for t in range(n_frames):
                x = (t * (v + 1)) % (size - 6)
                frames[t, 8:14, x : x + 6] = 255
            self.videos[f"v{v}.mp4"] = frames

    def read(self, path, indices):
        return self.videos[str(path)][np.asarray(indices)]


def test_clips_only_task_samples_constant_clips_without_labels():
    task = make_task("none", clip_len=8, extra_frames=1)
    rng = np.random.default_rng(0)
    strides = set()
    for _ in range(200):
        sample = task.sample(40, rng)
        steps = np.diff(sample.plan.indices)
        assert len(sample.plan) == 9 and sample.labels == {} and len(set(steps)) == 1
        strides.add(int(steps[0]))
    assert strides == {1, 2, 3, 4}
    assert task.min_frames == 8 * 4 + 1


def test_contrastive_only_needs_the_contrastive_branch():
    with pytest.raises(ValueError, match="only makes sense with MoCo"):
        build_task(PretrainConfig(task="none"))
    model = build_pretext_model(PretrainConfig(task="none", moco=MoCoConfig(queue_size=8), clip_len=4, size=16))
    clips = {"pretext.clip": torch.randn(2, 3, 4, 16, 16), "moco.key": torch.randn(2, 3, 4, 16, 16)}
    loss, metrics = model.training_step({"clips": clips, "labels": {}})
    loss.backward()
    assert loss.requires_grad and "moco.loss" in metrics
    assert model.backbone.features(clips["pretext.clip"], layers=("pool5",))["pool5"].shape[0] == 2


def test_pretrain_writes_a_checkpoint_whose_config_rebuilds_the_model(tmp_path):
    torch.set_num_threads(1)
    frames = ArrayFrames()
    cfg = PretrainConfig(task="speed-change-fine", task_options={"pool": (1, 2)}, moco=MoCoConfig(queue_size=8),
                         clip_len=6, size=16, residual=True, batch_size=4, lr=0.01)
    model, result = pretrain(cfg, paths=list(frames.videos), num_frames=[60] * 4, source=frames,
                             out_dir=tmp_path, max_steps=3, progress=False, log_every=1, checkpoint_every=None)
    assert result.steps == 3 and np.isfinite(result.final_loss)
    state = load_checkpoint(result.checkpoint)
    again = config_from_checkpoint(state)
    assert again == cfg
    rebuilt = build_pretext_model(again)
    rebuilt.load_state_dict(state["model"])
    assert all(torch.equal(a, b) for a, b in zip(rebuilt.state_dict().values(), model.state_dict().values()))
    assert {"pretext.speed_acc", "pretext.loc_acc", "moco.loss"} <= set(result.history[-1])
