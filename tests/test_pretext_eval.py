"""vsslkit.eval.pretext and `vsslkit pretext-eval`: held-out pretext accuracy of a checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_pretrain_lib import ArrayFrames  # tests/ is on sys.path (pytest prepend import mode)

from vsslkit.cli import main
from vsslkit.eval.pretext import load_pretext_model, pretext_accuracy
from vsslkit.train.pretrain import PretrainConfig, pretrain

torch.set_num_threads(1)
CONFIG = PretrainConfig(task="speed-change-fine", task_options={"pool": (1, 2)}, contrastive=True, queue_size=8,
                        clip_len=6, size=16, residual=True, batch_size=4, lr=0.01)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    frames = ArrayFrames()
    model, result = pretrain(CONFIG, paths=list(frames.videos), num_frames=[60] * 4, source=frames,
                             out_dir=tmp_path_factory.mktemp("pre"), max_steps=2, progress=False, log_every=1,
                             checkpoint_every=None)
    return frames, model, result.checkpoint


def test_checkpoint_rebuilds_the_whole_pretext_model(pretrained):
    _, model, checkpoint = pretrained
    loaded, config = load_pretext_model(checkpoint)
    assert config == CONFIG
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_accuracy_chance_and_confusion_agree_and_short_videos_are_listed(pretrained):
    frames, model, _ = pretrained
    paths = [*frames.videos, "short.mp4"]
    kwargs = {"paths": paths, "num_frames": [60, 60, 60, 60, 5], "source": frames, "clips_per_video": 5, "seed": 3,
              "batch_size": 7}
    result = pretext_accuracy(model, CONFIG, **kwargs)
    assert result["clips"] == 20 and result["videos"] == 4
    assert result["skipped"][0][0] == "short.mp4" and "at least" in result["skipped"][0][1]
    assert set(result["heads"]) == {"speed", "loc"}
    for head, classes in (("speed", 4), ("loc", 4)):  # K = 6: m in {2, 3, 4} + dummy
        r = result["heads"][head]
        confusion = np.array(r["confusion"])
        assert confusion.shape == (classes, classes) and confusion.sum() == 20
        assert r["accuracy"] == pytest.approx(np.trace(confusion) / 20)
        assert r["chance"] == pytest.approx(confusion.sum(1).max() / 20)
    assert pretext_accuracy(model, CONFIG, **kwargs) == result  # same seed, same clips, same numbers
    assert model.training  # the caller's mode is restored


def test_a_model_that_always_answers_zero_scores_the_share_of_zeros(pretrained):
    frames = pretrained[0]

    class Zero(torch.nn.Module):
        def forward(self, clips):
            return {"speed": torch.tensor([[1.0, 0, 0, 0]]).repeat(len(clips), 1),
                    "loc": torch.tensor([[1.0, 0, 0, 0]]).repeat(len(clips), 1)}

    result = pretext_accuracy(Zero(), CONFIG, paths=list(frames.videos), num_frames=[60] * 4, source=frames,
                              clips_per_video=8)
    for head in ("speed", "loc"):
        confusion = np.array(result["heads"][head]["confusion"])
        assert confusion[:, 1:].sum() == 0  # every prediction is class 0
        assert result["heads"][head]["accuracy"] == pytest.approx(confusion[0, 0] / 32)


def test_foreign_checkpoint_is_refused_by_name(tmp_path):
    path = tmp_path / "classifier.pt"
    torch.save({"model": {}, "config": {"num_classes": 3}}, path)
    with pytest.raises(ValueError, match="classifier.pt: not a vsslkit pretraining checkpoint"):
        load_pretext_model(path)


@pytest.mark.slow
def test_cli_prints_and_writes_the_result(tmp_path, capsys):
    from vsslkit.data.synthetic import make_synthetic

    data = make_synthetic(tmp_path / "syn", videos_per_class=7, size=32, length_range=(40, 48), progress=False)
    common = ["--data", str(data), "--store", str(tmp_path / "store"), "--short-side", "32"]
    assert main(["pretrain", "--task", "speed-change-fine", "--residual", "--clip-len", "6", "--size", "24",
                 "--width", "0.125", "--batch-size", "4", "--steps", "2", "--no-progress", "--out",
                 str(tmp_path / "pre"), *common]) == 0
    out = tmp_path / "pretext.json"
    assert main(["pretext-eval", "--checkpoint", str(tmp_path / "pre" / "checkpoints" / "last.pt"),
                 "--clips-per-video", "2", "--out", str(out), *common]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["videos"] == 28 and result["clips"] == 56  # split 1 tests 2 of 7 groups: 2 x 14 videos
    assert f"loc: accuracy {100 * result['heads']['loc']['accuracy']:.1f} %" in printed
    assert "pretext-eval" in result["command"] and result["checkpoint"].endswith("last.pt")
