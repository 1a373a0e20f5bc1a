"""`vsslkit pretext-eval` and `load_pretext_model`: held-out pretext accuracy of a checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vsslkit.cli import main
from vsslkit.train.pretrain import load_pretext_model

torch.set_num_threads(1)


def test_foreign_checkpoint_is_refused_by_name(tmp_path):
    path = tmp_path / "classifier.pt"
    torch.save({"model": {}, "config": {"num_classes": 3}}, path)
    with pytest.raises(ValueError, match="classifier.pt: not a vsslkit pretraining checkpoint"):
        load_pretext_model(path)


@pytest.mark.slow
def test_cli_scores_the_checkpoint_on_held_out_videos(tmp_path, capsys):
    from vsslkit.data.synthetic import make_synthetic

    data = make_synthetic(tmp_path / "syn", videos_per_class=7, size=32, length_range=(12, 48), progress=False)
    common = ["--data", str(data), "--store", str(tmp_path / "store"), "--short-side", "32"]
    assert main(["pretrain", "--task", "speed-change-fine", "--contrastive", "--queue-size", "8", "--residual",
                 "--clip-len", "6", "--size", "24", "--width", "0.125", "--batch-size", "4", "--steps", "2",
                 "--no-progress", "--out", str(tmp_path / "pre"), *common]) == 0
    checkpoint = tmp_path / "pre" / "checkpoints" / "last.pt"
    model, config = load_pretext_model(checkpoint)
    saved = torch.load(checkpoint, weights_only=True)["model"]
    assert config.task == "speed-change-fine" and config.contrastive
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())  # the whole model, MoCo included

    out = tmp_path / "pretext.json"
    assert main(["pretext-eval", "--checkpoint", str(checkpoint), "--clips-per-video", "2", "--out", str(out),
                 *common]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    # split 1 tests 2 of 7 groups: 28 videos; those shorter than one stride-3 clip (19 frames) are listed
    meta = json.loads((data / "synthetic.json").read_text())["videos"]
    short = {v["path"].split("/")[-1] for v in meta if v["group"] in (1, 2) and v["num_frames"] < model.task.min_frames}
    assert short and {p.split("/")[-1] for p, _ in result["skipped"]} == short
    assert all("needs at least 19" in reason for _, reason in result["skipped"])
    n = 2 * (28 - len(short))
    assert result["clips"] == n
    for head, classes in (("speed", 9), ("loc", 4)):  # K = 6: m in {2, 3, 4} + constant
        r = result["heads"][head]
        confusion = np.array(r["confusion"])
        assert confusion.shape == (classes, classes) and confusion.sum() == n
        assert r["accuracy"] == pytest.approx(np.trace(confusion) / n)
        assert f"| {head} | {classes} | {100 * r['accuracy']:.1f} % |" in printed
    assert "--subset test" in result["command"] and "--seed 0" in result["command"]
    assert "--store-format auto" in result["command"]  # a JPEG-store evaluation must say so to be rerun
    # same seed, same clips, same numbers
    again = tmp_path / "again.json"
    assert main(["pretext-eval", "--checkpoint", str(checkpoint), "--clips-per-video", "2", "--out", str(again),
                 *common]) == 0
    assert json.loads(again.read_text())["heads"] == result["heads"]
