"""TGN's frames per group g (seed 002 T6) from the command line down to every rebuilt backbone.

`--tgn-group-frames` sets g for `pretrain`; `finetune --init`, `evaluate` and `embed` read it from
the checkpoint like the other backbone settings, and a classifier saves it, so the reloaded
network has the same temporal groups per layer (their parameters are shaped by them).
"""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from vsslkit.cli import build_parser, main
from vsslkit.models import build_backbone
from vsslkit.models.norms import TemporalGroupNorm

torch.set_num_threads(1)
# clip_len 8 through r3d_10 gives norm layers of 8, 8, 4, 2, 1 frames: g=4 and g=2 differ in groups
SMALL = ["--backbone", "r3d_10", "--width", "0.125", "--clip-len", "8", "--size", "32", "--batch-size", "4",
         "--device", "cpu", "--no-progress", "--log-every", "1", "--short-side", "32", "--no-flip"]


def _groups(net: torch.nn.Module) -> list[int]:
    return [m.num_groups_t for m in net.modules() if isinstance(m, TemporalGroupNorm)]


def _tgn_groups(g: int) -> list[int]:
    return _groups(build_backbone("r3d_10", width=0.125, norm="tgn", in_frames=8, tgn_group_frames=g))


def test_the_flag_parses_and_refuses_impossible_values(capsys):
    parser = build_parser()
    for command in ("pretrain", "finetune"):
        args = parser.parse_args([command, "--data", "d", "--out", "o", "--norm", "tgn", "--tgn-group-frames", "4"])
        assert args.tgn_group_frames == 4
        assert parser.parse_args([command, "--data", "d", "--out", "o"]).tgn_group_frames is None
    for command in ("evaluate", "retrieve"):
        args = parser.parse_args([command, "--data", "d", "--checkpoint", "random", "--tgn-group-frames", "3",
                                  *(["--out-dir", "o"] if command == "evaluate" else [])])
        assert args.tgn_group_frames == 3
    assert parser.parse_args(["embed", "v.avi", "--checkpoint", "random", "--out", "o.npz",
                              "--tgn-group-frames", "1"]).tgn_group_frames == 1
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["pretrain", "--data", "d", "--out", "o", "--norm", "tgn", "--tgn-group-frames", "0"])
    assert exc.value.code == 2 and "--tgn-group-frames" in capsys.readouterr().err


def test_group_frames_with_batch_norm_is_one_line_and_exit_2(tmp_path, capsys):
    """Refused before any data work (the --data folder does not even exist)."""
    base = ["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--steps", "1"]
    for extra in (["--norm", "bn"], []):  # bn given, or bn by default
        assert main(["pretrain", *extra, "--tgn-group-frames", "4", *base]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("vsslkit: --tgn-group-frames:") and "--norm tgn" in err
    assert not (tmp_path / "o").exists()


def test_resolve_settings_takes_g_only_from_a_tgn_checkpoint():
    from vsslkit.commands.common import resolve_settings
    from vsslkit.commands.evaluate import EVAL_DEFAULTS
    from vsslkit.errors import UsageError

    def args(**given):
        return argparse.Namespace(**{**{k: None for k in ("backbone", "width", "norm", "tgn_group_frames", "clip_len",
                                                            "crop_size", "residual", "stride")}, **given})

    tgn = {"norm": "tgn", "tgn_group_frames": 4}
    a = args()
    assert "tgn_group_frames=4" in resolve_settings(a, defaults=EVAL_DEFAULTS, sources=[("t.pt", tgn)],
                                                    flags={"size": "crop_size"})
    assert (a.norm, a.tgn_group_frames) == ("tgn", 4)
    with pytest.raises(SystemExit, match=r"--tgn-group-frames 2 contradicts t.pt \(tgn_group_frames=4\)"):
        resolve_settings(args(tgn_group_frames=2), defaults=EVAL_DEFAULTS, sources=[("t.pt", tgn)],
                         flags={"size": "crop_size"})
    with pytest.raises(SystemExit, match="do not belong together"):
        resolve_settings(args(), defaults=EVAL_DEFAULTS, sources=[("t.pt", tgn), ("c.pt", {**tgn, "tgn_group_frames": 2})],
                         flags={"size": "crop_size"})
    # a BN checkpoint fixes no g: g given with it is the "needs --norm tgn" error, not a contradiction
    with pytest.raises(UsageError, match="needs --norm tgn"):
        resolve_settings(args(tgn_group_frames=4), defaults=EVAL_DEFAULTS, sources=[("b.pt", {"norm": "bn"})],
                         flags={"size": "crop_size"})


def test_classifier_config_without_the_key_loads_with_g_2_and_stores_it_only_when_not_2():
    from vsslkit.train.supervised import ClassifierConfig

    old = {"backbone": "r3d_10", "width": 0.125, "num_classes": 3, "clip_len": 8, "stride": 1, "size": 32,
           "residual": False, "freeze_backbone": False, "dropout": 0.5, "class_names": ["a", "b", "c"],
           "init": "random", "flip": True, "norm": "tgn"}
    config = ClassifierConfig.from_json(old)
    assert config.tgn_group_frames == 2 and config.to_json() == old  # old classifier.json unchanged on rewrite
    g4 = ClassifierConfig.from_json({**old, "tgn_group_frames": 4})
    assert g4.to_json()["tgn_group_frames"] == 4 and ClassifierConfig.from_json(g4.to_json()) == g4


@pytest.mark.slow
def test_pretrain_with_g4_then_finetune_evaluate_and_embed_rebuild_g4(tmp_path_factory, capsys):
    from vsslkit.commands.common import checkpoint_settings
    from vsslkit.data.synthetic import make_synthetic
    from vsslkit.eval.embed import EmbedSettings, build_embedding_backbone, load_embedding
    from vsslkit.train.checkpoint import load_checkpoint
    from vsslkit.train.supervised import load_classifier

    assert _tgn_groups(4) == [2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1] != _tgn_groups(2)
    root = tmp_path_factory.mktemp("tgn")
    data = make_synthetic(root / "syn", videos_per_class=7, size=32, length_range=(24, 32), progress=False)
    store = root / "store"
    common = ["--data", str(data), "--store", str(store), *SMALL]
    pre = root / "pre"
    assert main(["pretrain", "--task", "pace", "--norm", "tgn", "--tgn-group-frames", "4", "--steps", "1",
                 "--out", str(pre), *common]) == 0
    ckpt = pre / "checkpoints" / "last.pt"
    assert load_checkpoint(ckpt)["config"]["pretrain"]["tgn_group_frames"] == 4
    assert checkpoint_settings(ckpt)["tgn_group_frames"] == 4

    capsys.readouterr()
    ft = root / "ft"
    assert main(["finetune", "--init", str(ckpt), "--steps", "1", "--label-fraction", "0.5", "--no-evaluate",
                 "--out", str(ft), *common]) == 0
    assert "tgn_group_frames=4" in capsys.readouterr().out  # taken from the checkpoint, and said so
    model, config = load_classifier(ft / "classifier.pt")
    assert (config.norm, config.tgn_group_frames) == ("tgn", 4) and _groups(model.backbone) == _tgn_groups(4)
    assert json.loads((ft / "classifier.json").read_text())["tgn_group_frames"] == 4
    assert checkpoint_settings(ft / "classifier.pt")["tgn_group_frames"] == 4

    assert main(["finetune", "--init", str(ckpt), "--tgn-group-frames", "2", "--steps", "1",
                 "--out", str(root / "x"), *common]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--tgn-group-frames 2 contradicts" in err and "tgn_group_frames=4" in err

    # retrieve / evaluate / embed: the pretraining checkpoint's weights only fit a backbone with g=4
    assert main(["retrieve", "--data", str(data), "--checkpoint", str(ckpt), "--clips-per-video", "1",
                 "--short-side", "32", "--store", str(store), "--out", str(root / "r.json")]) == 0
    err = capsys.readouterr().err
    assert "tgn_group_frames=4" in err and "missing 0, unexpected" in err
    assert json.loads((root / "r.json").read_text())["protocol"]["extra"]["tgn_group_frames"] == 4
    net, report = build_embedding_backbone(EmbedSettings(backbone="r3d_10", width=0.125, norm="tgn",
                                                         tgn_group_frames=4, clip_len=8), ckpt)
    assert _groups(net) == _tgn_groups(4) and not report.missing
    videos = sorted(data.rglob("*.mp4"))[:2]
    out = root / "emb.npz"
    assert main(["embed", *map(str, videos), "--checkpoint", str(ckpt), "--out", str(out), "--clips", "1",
                 "--crop-size", "32", "--short-side", "32", "--store", str(store), "--device", "cpu",
                 "--no-progress"]) == 0
    assert "tgn_group_frames=4" in capsys.readouterr().err
    embedding = load_embedding(out)
    assert embedding.protocol["extra"]["tgn_group_frames"] == 4
    assert EmbedSettings.from_protocol(embedding.protocol).tgn_group_frames == 4
