"""Downstream evaluation wired end to end: finetune → test protocol → result.json → report / evaluate.

A tiny synthetic dataset (14 classes, 7 videos each, 32 px) and a slim R3D keep every command to
a few seconds; the numbers are meaningless, the protocol and the bookkeeping are what is tested.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vsslkit.cli import main
from vsslkit.eval.results import file_sha256

torch.set_num_threads(1)
SMALL = ["--backbone", "r3d_10", "--width", "0.125", "--clip-len", "4", "--size", "32", "--residual"]
RUN = ["--batch-size", "4", "--device", "cpu", "--no-progress", "--log-every", "1", "--short-side", "32",
       "--no-flip"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Dataset, one pretraining checkpoint and a random-init fine-tune (shared by the tests)."""
    from vsslkit.data.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("ft")
    data = make_synthetic(root / "syn", videos_per_class=7, size=32, length_range=(40, 60), progress=False)
    store = root / "store"
    common = ["--data", str(data), "--store", str(store), *RUN]
    assert main(["pretrain", "--task", "pace", "--steps", "2", "--out", str(root / "pre"), *SMALL, *common]) == 0
    base = [*common, "--eval-batch-size", "40"]
    assert main(["finetune", "--init", "random", "--steps", "2", "--label-fraction", "0.5", "--out",
                 str(root / "ft_random"), *SMALL, *base]) == 0
    return {"root": root, "data": data, "store": store, "base": base,
            "pretrained": root / "pre" / "checkpoints" / "last.pt", "random": root / "ft_random"}


def _result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


def test_random_finetune_writes_the_full_protocol(runs, capsys):
    res = _result(runs["random"])
    proto, metrics = res["protocol"], res["metrics"]
    assert proto["task"] == "video_classification" and proto["subset"] == "test" and proto["split"] == 1
    assert proto["dataset"].startswith("syn") and proto["label_fraction"] == 0.5
    assert proto["clips_per_video"] == 10 and proto["averaging"] == "softmax"
    assert proto["checkpoint"] == "random" and proto["checkpoint_sha256"] is None
    assert proto["backbone"] == "r3d_10" and proto["clip_len"] == 4 and proto["crop"] == 32 and proto["residual"]
    assert proto["seed"] == 0 and proto["command"].startswith("vsslkit finetune") and "--init random" in proto["command"]
    assert proto["extra"]["init"] == "random" and proto["extra"]["width"] == 0.125
    # every one of the 28 test videos (2 groups x 14 classes) is scored with 10 clips
    assert metrics["num_videos"] == metrics["test_videos"] == 28 and metrics["num_clips"] == 280
    assert metrics["unscored_videos"] == [] and metrics["reduced_stride_videos"] == []
    for key in ("clip_accuracy", "video_accuracy", "hit_at_5"):
        assert 0.0 <= metrics[key] <= 1.0
    assert len(metrics["most_confused"]) <= 5
    assert json.loads((runs["random"] / "classifier.json").read_text())["norm"] == "bn"


def test_finetune_from_pretraining_takes_its_settings_then_report_and_evaluate(runs, tmp_path, capsys):
    ckpt = runs["pretrained"]
    out = tmp_path / "ft_pre"
    # no --backbone/--width/--clip-len/--size/--residual: they come from the checkpoint
    assert main(["finetune", "--init", str(ckpt), "--steps", "2", "--label-fraction", "0.5", "--out", str(out),
                 *runs["base"]]) == 0
    printed = capsys.readouterr().out
    assert "width=0.125" in printed and "clip_len=4" in printed and "residual=True" in printed
    assert "video accuracy" in printed and "Hit@5" in printed
    config = json.loads((out / "classifier.json").read_text())
    assert (config["width"], config["clip_len"], config["size"], config["residual"]) == (0.125, 4, 32, True)
    proto = _result(out)["protocol"]
    assert proto["checkpoint_sha256"] == file_sha256(ckpt) and proto["extra"]["init"] == "pretrain:pace"

    # report: one row per initialisation (not averaged together although only the init differs)
    table_path = tmp_path / "table.md"
    assert main(["report", str(runs["random"] / "result.json"), str(out / "result.json"),
                 "--columns", "video_accuracy,clip_accuracy,hit_at_5", "--out", str(table_path)]) == 0
    rows = [line for line in table_path.read_text().splitlines() if line.startswith("|")][2:]
    assert len(rows) == 2 and any("| random |" in r for r in rows) and any("pretrain:pace" in r for r in rows)

    # evaluate --classifier: same protocol, same number as finetune's own test pass
    ev = tmp_path / "ev"
    assert main(["evaluate", "--data", str(runs["data"]), "--store", str(runs["store"]), "--short-side", "32",
                 "--checkpoint", str(ckpt), "--classifier", str(out / "classifier.pt"), "--svm-videos", "0",
                 "--pairs", "0", "--batch-size", "40", "--out-dir", str(ev)]) == 0
    mine, theirs = _result(out)["metrics"], json.loads((ev / "video_classification.json").read_text())["metrics"]
    assert theirs["video_accuracy"] == mine["video_accuracy"] and theirs["clip_accuracy"] == mine["clip_accuracy"]
    assert theirs["predictions"] == mine["predictions"]


def test_finetune_from_a_classifier_with_short_test_videos(runs, tmp_path, capsys):
    """--init classifier.pt; a stride too long for some test videos scores them at a smaller stride."""
    out = tmp_path / "ft_cls"
    # 5 frames read (residual) at stride 12 span 49 frames; the videos have 40-60
    assert main(["finetune", "--init", str(runs["random"] / "classifier.pt"), "--steps", "1", "--stride", "12",
                 "--out", str(out), "--clips-per-video", "3", *runs["base"]]) == 0
    printed = capsys.readouterr().out
    res = _result(out)
    metrics, proto = res["metrics"], res["protocol"]
    assert proto["extra"]["init"] == "classifier" and proto["stride"] == 12 and proto["clips_per_video"] == 3
    reduced = metrics["reduced_stride_videos"]
    assert reduced and all(v["frames"] < 49 and (5 - 1) * v["stride"] + 1 <= v["frames"] for v in reduced)
    assert metrics["num_videos"] == 28 and metrics["unscored_videos"] == []  # nobody dropped
    assert Path(reduced[0]["path"]).name in printed

    ev = tmp_path / "ev"
    assert main(["evaluate", "--data", str(runs["data"]), "--store", str(runs["store"]), "--short-side", "32",
                 "--checkpoint", "random", "--classifier", str(out / "classifier.pt"), "--clips-per-video", "3",
                 "--svm-videos", "0", "--pairs", "0", "--batch-size", "40", "--out-dir", str(ev)]) == 0
    theirs = json.loads((ev / "video_classification.json").read_text())
    assert theirs["metrics"]["video_accuracy"] == metrics["video_accuracy"]
    assert theirs["protocol"]["stride"] == 12 and theirs["metrics"]["reduced_stride_videos"] == reduced


def test_no_evaluate_skips_the_test_pass(runs, tmp_path):
    out = tmp_path / "ft_noeval"
    assert main(["finetune", "--init", "random", "--steps", "1", "--no-evaluate", "--out", str(out), *SMALL,
                 *runs["base"]]) == 0
    assert (out / "classifier.pt").is_file() and not (out / "result.json").exists()


def test_flags_that_contradict_the_checkpoint_are_refused(runs, tmp_path, capsys):
    base = ["--out", str(tmp_path / "x"), *runs["base"]]
    capsys.readouterr()
    assert main(["finetune", "--init", str(runs["pretrained"]), "--width", "0.25", *base]) == 2
    assert re.search(r"^vsslkit: --width 0.25 contradicts .*last.pt \(width=0.125\)", capsys.readouterr().err)
    assert main(["finetune", "--init", str(runs["pretrained"]), "--no-residual", *base]) == 2
    assert re.search(r"^vsslkit: --no-residual contradicts .*residual=True", capsys.readouterr().err)
    # agreeing flags are fine: checked by parsing only (no training) through resolve_settings
    from vsslkit.commands.common import checkpoint_settings, resolve_settings
    from vsslkit.commands.train import TRAIN_DEFAULTS

    args = argparse.Namespace(backbone="r3d_10", width=None, norm=None, tgn_group_frames=None, clip_len=4, size=None,
                              residual=None)
    taken = resolve_settings(args, defaults=TRAIN_DEFAULTS, sources=[("pre", checkpoint_settings(runs["pretrained"]))])
    assert (args.width, args.size, args.residual, args.norm) == (0.125, 32, True, "bn")
    assert "width=0.125" in taken and not any(t.startswith("clip_len") for t in taken)
    classifier = checkpoint_settings(runs["random"] / "classifier.pt")
    assert classifier["stride"] == 1 and classifier["width"] == 0.125
    with pytest.raises(SystemExit, match="do not belong together"):
        resolve_settings(argparse.Namespace(width=None), defaults={"width": 1.0},
                         sources=[("a.pt", {"width": 0.125}), ("b.pt", {"width": 0.25})])
    with pytest.raises(SystemExit, match="--crop-size 64 contradicts"):
        resolve_settings(argparse.Namespace(crop_size=64), defaults={"size": 112}, sources=[("a.pt", {"size": 32})],
                         flags={"size": "crop_size"})


def test_score_classifier_on_raises_value_error_for_a_test_set_that_does_not_fit():
    """A library function: the error is a ValueError naming the test set; commands print it (below)."""
    from vsslkit.data.datasets import VideoIndex
    from vsslkit.eval.video_level import score_classifier_on
    from vsslkit.train.supervised import ClassifierConfig

    config = ClassifierConfig(backbone="r3d_10", width=0.125, num_classes=3, clip_len=4, stride=2, size=32,
                              residual=True, freeze_backbone=False, dropout=0.5, class_names=("A", "B", "C"))

    def index(names, frames):
        return VideoIndex(Path("/data/other"), [Path(f"/data/other/v{i}.mp4") for i in range(3)], [0, 1, 2],
                          list(names), ["g1"] * 3, num_frames=frames)

    with pytest.raises(ValueError, match=r"/data/other: test classes \['A', 'C', 'B'\]… differ from the classifier"):
        score_classifier_on(None, config, index("ACB", [60] * 3), store=None)
    with pytest.raises(ValueError, match="/data/other: 4 test classes, the classifier has 3"):
        score_classifier_on(None, replace(config, class_names=()), index("ABCD", [60] * 3), store=None)
    with pytest.raises(ValueError, match="/data/other: no test video is long enough for one clip"):
        score_classifier_on(None, config, index("ABC", [4, 3, 2]), store=None)  # one clip reads 5 frames


def test_commands_print_the_scoring_error(runs, tmp_path, monkeypatch, capsys):
    import vsslkit.eval.video_level

    def refuse(*args, **kwargs):
        raise ValueError("/data/other: test classes differ")

    monkeypatch.setattr(vsslkit.eval.video_level, "score_classifier_on", refuse)
    capsys.readouterr()
    assert main(["finetune", "--init", "random", "--steps", "1", "--out", str(tmp_path / "ft"), *SMALL,
                 *runs["base"]]) == 2
    assert "/data/other: test classes differ" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(runs["data"]), "--store", str(runs["store"]), "--short-side", "32",
                 "--checkpoint", "random", "--classifier", str(runs["random"] / "classifier.pt"), "--clips-per-video",
                 "1", "--svm-videos", "0", "--pairs", "0", "--batch-size", "40", "--out-dir", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert "vsslkit: /data/other: test classes differ" in err.splitlines()  # the error is one line


def test_evaluate_names_bad_backbone_settings_in_one_line(runs, tmp_path, capsys):
    # the default backbone is a preset; a --width with it is the user's mistake, not a traceback
    assert main(["evaluate", "--data", str(runs["data"]), "--store", str(runs["store"]), "--short-side", "32",
                 "--checkpoint", "random", "--width", "0.25", "--svm-videos", "0", "--pairs", "0",
                 "--out-dir", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--width" in err[0] and "is a preset" in err[0]


def test_load_classifier_and_backbone_weights_from_every_checkpoint_kind(runs):
    from vsslkit.models import build_backbone
    from vsslkit.models.weights import load_backbone_weights
    from vsslkit.train.supervised import VideoClassifier, load_classifier

    model, config = load_classifier(runs["random"] / "classifier.pt")
    assert isinstance(model, VideoClassifier) and not model.training and config.num_classes == 14
    assert config.class_names[0] == "MoveRight" and config.residual
    with pytest.raises(ValueError, match=r"last.pt: 'config' is not a ClassifierConfig"):
        load_classifier(runs["pretrained"])

    # classifier checkpoint → backbone: every backbone tensor, the linear layer ignored
    net = build_backbone("r3d_10", width=0.125)
    report = load_backbone_weights(net, runs["random"] / "classifier.pt")
    assert report.missing == [] and report.unexpected == ["head.fc.bias", "head.fc.weight"]
    torch.testing.assert_close(net.state_dict(), {k[len("backbone."):]: v for k, v in model.state_dict().items()
                                                  if k.startswith("backbone.")})
    # pretraining checkpoint → backbone: the pace head is ignored, nothing missing
    report = load_backbone_weights(build_backbone("r3d_10", width=0.125), runs["pretrained"])
    assert report.missing == [] and report.unexpected and all(k.startswith("head.") for k in report.unexpected)
    with pytest.raises(ValueError, match="last.pt: weights do not fit this backbone"):
        load_backbone_weights(build_backbone("r3d_10", width=0.25), runs["pretrained"])


def test_moco_checkpoint_key_encoder_is_ignored(tmp_path):
    """A PretextModel with MoCo holds a second backbone (head.branches.moco.key_backbone.*): never loaded."""
    from vsslkit.models import build_backbone
    from vsslkit.models.weights import load_backbone_weights
    from vsslkit.train.checkpoint import save_checkpoint
    from vsslkit.train.pretrain import MoCoConfig, PretrainConfig, build_pretext_model

    config = PretrainConfig(task="pace", moco=MoCoConfig(queue_size=8), width=0.125, clip_len=4)
    model = build_pretext_model(config)
    with torch.no_grad():
        for p in model.head.branches["moco"].key_backbone.parameters():
            p.fill_(7.0)  # a key encoder that differs from the query backbone
    save_checkpoint(tmp_path / "moco.pt", {"model": model.state_dict(), "config": {"pretrain": config.to_json()}})
    net = build_backbone("r3d_10", width=0.125)
    report = load_backbone_weights(net, tmp_path / "moco.pt")
    assert report.missing == [] and any(k.startswith("head.branches.moco.key_backbone.") for k in report.unexpected)
    torch.testing.assert_close(net.state_dict(), model.backbone.state_dict())


def test_fitting_strides():
    from vsslkit.eval.features import fitting_strides

    # residual: 5 frames read; stride 3 spans 13, stride 2 spans 9, stride 1 spans 5
    assert fitting_strides([13, 12, 9, 5, 4], clip_len=4, stride=3, residual=True) == [3, 2, 2, 1, None]
    assert fitting_strides(np.array([4]), clip_len=4, stride=1, residual=False) == [1]
    with pytest.raises(ValueError):
        fitting_strides([10], clip_len=4, stride=0, residual=False)
