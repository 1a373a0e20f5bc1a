"""Presets: the seeds' full-size recipes build, run a forward/backward at their true clip length
and crop on CPU, convert epoch milestones like the loaders count steps, and lose to explicit flags."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from test_clips import MemorySource

from vsslkit.cli import main
from vsslkit.commands.common import BACKBONE_SETTINGS
from vsslkit.data.clips import BatchPreparer, ClipDataset, EpochSampler, collate
from vsslkit.experiments.presets import (
    PRESETS,
    THESIS,
    get_preset,
    milestone_steps,
    preset_table,
    steps_per_epoch,
)
from vsslkit.models.backbones import BACKBONE_NAMES
from vsslkit.train.checkpoint import load_checkpoint
from vsslkit.train.pretrain import PretrainConfig, build_pretext_model, build_task

torch.set_num_threads(1)
SMALL = ["--backbone", "r3d_10", "--width", "0.125", "--clip-len", "8", "--size", "32", "--batch-size", "4",
         "--device", "cpu", "--no-progress", "--log-every", "1", "--short-side", "32"]


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds_its_config_and_task(name):
    preset = PRESETS[name]
    config = preset.pretrain
    assert preset.name == name and preset.source.startswith("seed 00") and preset.description
    assert config.backbone in BACKBONE_NAMES and config.milestones == ()  # the schedule lives in epochs
    assert PretrainConfig.from_json(config.to_json()) == config  # what a checkpoint stores rebuilds it
    task = build_task(config)
    assert task.min_frames >= config.clip_len
    if preset.milestone_epochs:
        assert preset.epochs and list(preset.milestone_epochs) == sorted(preset.milestone_epochs)
        assert preset.milestone_epochs[-1] < preset.epochs
    if preset.finetune and preset.finetune.milestone_epochs:
        assert preset.finetune.milestone_epochs[-1] < preset.finetune.epochs


def test_thesis_preset_is_the_thesis_and_the_quickstart_full_recipe():
    from vsslkit.experiments.quickstart import FULL_DOWNSTREAM, FULL_PRETRAIN

    c = THESIS.pretrain
    assert FULL_PRETRAIN == c  # `vsslkit quickstart --full` runs this preset's config
    assert (FULL_DOWNSTREAM.batch_size, FULL_DOWNSTREAM.lr) == (THESIS.finetune.batch_size, THESIS.finetune.lr)
    # seed 000 §3.5.1 / §4.5.1
    assert (c.task, c.backbone, c.width, c.clip_len, c.size) == ("speed-change-fine", "r2plus1d_10", 1.0, 16, 112)
    assert (c.batch_size, c.lr, c.optimizer) == (32, 0.01, "sgd")
    assert (THESIS.epochs, THESIS.milestone_epochs) == (400, (150, 250, 350))
    assert (c.moco.weight, c.moco.queue_size, c.moco.momentum, c.moco.temperature) == (0.5, 2048, 0.999, 0.07)
    ft = THESIS.finetune
    assert (ft.batch_size, ft.lr, ft.epochs, ft.milestone_epochs) == (16, 0.01, 200, (80, 160))


@pytest.mark.parametrize(("n", "batch", "world"), [(100, 32, 1), (96, 32, 1), (100, 32, 2), (7, 4, 3), (5, 8, 1),
                                                    (9537, 32, 8), (3, 2, 4)])
def test_steps_per_epoch_counts_what_the_loader_yields(n, batch, world):
    for rank in range(world):
        sampler = EpochSampler(n, seed=0, rank=rank, world_size=world)
        items = {key: 0 for key in sampler}  # the sampler yields (epoch, index) keys
        loader = torch.utils.data.DataLoader(items, batch_size=batch, sampler=sampler,
                                             collate_fn=len, drop_last=len(sampler) > batch)
        assert len(list(loader)) == steps_per_epoch(n, batch, world)
    assert milestone_steps((2, 5), steps_per_epoch(n, batch, world)) == (2 * steps_per_epoch(n, batch, world),
                                                                         5 * steps_per_epoch(n, batch, world))


def _flow_videos(tmp_path, count: int):
    from test_flow_cache import textured_square

    from vsslkit.data.flow_cache import FlowCache
    from vsslkit.data.store import FrameStore
    from vsslkit.data.writer import write_video

    paths = [write_video(tmp_path / f"v{i}.mp4", textured_square(num_frames=24, size=64, step=s, seed=i), crf=0)
             for i, s in enumerate([(1, 0), (-1, 0), (0, 1), (1, 1)][:count])]
    store = FrameStore(tmp_path / "store", short_side=64)
    flow = FlowCache(store)
    flow.build(paths, progress=False)
    return paths, [24] * count, store, flow


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_model_trains_one_step_at_its_true_clip_length_and_crop(name, tmp_path):
    """Forward + backward of the preset's whole pretext model (backbone at full width, heads, MoCo
    or the BYOL target) on a batch of 2 at the preset's clip length and crop, on CPU."""
    config = PRESETS[name].pretrain
    model = build_pretext_model(config)
    task = model.task
    flow_clips = tuple(f"{b}.{c}" for b, t in task.tasks.items() for c in getattr(t, "flow_clips", ()))
    if flow_clips:  # statistics: labels from optical flow of real (tiny) videos
        paths, counts, source, flow = _flow_videos(tmp_path, 2)
    else:
        paths, counts, flow = [f"v{i}" for i in range(4)], [4 * task.min_frames] * 4, None
        source = MemorySource(dict(zip(paths, counts, strict=True)))
    data = ClipDataset(paths, None, counts, source, task.sample, seed=0, min_frames=task.min_frames,
                       groups=["a", "b", "c", "d"][:len(paths)], flow=flow, flow_clips=flow_clips)
    model.bind_dataset(len(data), data.groups)
    raw = collate([data[i] for i in range(2)])
    batch = BatchPreparer(crop_size=config.size, residual=config.residual, flip=config.flip, seed=0)(raw, step=0)
    for clip in batch["clips"].values():
        assert tuple(clip.shape) == (2, 3, config.clip_len, config.size, config.size)
    model.train()
    loss, metrics = model.training_step(batch)
    loss.backward()
    assert torch.isfinite(loss) and metrics
    first_conv = next(p for p in model.backbone.parameters() if p.dim() == 5)
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0


def test_table_lists_every_preset_and_list_exits_zero(capsys):
    table = preset_table()
    for preset in PRESETS.values():
        row = next(line for line in table.splitlines() if line.startswith(preset.name + " "))
        c = preset.pretrain
        for text in (c.backbone, f"{c.clip_len} x {c.size}^2", preset.source, f"{c.lr:g} {c.optimizer}"):
            assert text in row, (preset.name, text)
    for argv in (["pretrain", "--preset", "list"], ["finetune", "--preset", "list"], ["presets"]):
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert all(name in out for name in PRESETS) and table in out


@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_unknown_preset_is_one_line_exit_2(command, capsys):
    assert main([command, "--data", "d", "--out", "o", "--preset", "thesys"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "unknown preset 'thesys'" in lines[0] and not captured.out
    assert all(name in lines[0] for name in PRESETS)
    with pytest.raises(ValueError, match="choose from thesis"):
        get_preset("thesys")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from vsslkit.data.synthetic import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("syn"), videos_per_class=7, size=32, length_range=(40, 48),
                          progress=False)


@pytest.mark.slow
def test_explicit_flags_beat_the_preset_and_epoch_milestones_become_steps(synthetic, tmp_path, capsys):
    out = tmp_path / "pre"
    assert main(["pretrain", "--preset", "thesis", "--lr", "0.123", "--steps", "1", "--data", str(synthetic),
                 "--store", str(tmp_path / "store"), "--out", str(out), *SMALL]) == 0
    printed = capsys.readouterr().out
    line = next(x for x in printed.splitlines() if x.startswith("preset thesis"))
    taken = dict(item.split("=", 1) for item in line.split("set: ", 1)[1].split(", "))
    # given explicitly: not from the preset; not given: the thesis' values
    assert not {"lr", "backbone", "width", "clip_len", "size", "batch_size"} & set(taken)
    assert taken["task"] == "'speed-change-fine'" and taken["residual"] == "True" and taken["norm"] == "'bn'"
    assert taken["contrastive"] == "True" and taken["queue_size"] == "2048" and taken["ctr_weight"] == "0.5"
    assert "epochs" not in taken  # --steps was given
    saved = load_checkpoint(out / "checkpoints" / "last.pt")["config"]["pretrain"]
    assert saved["lr"] == 0.123 and saved["batch_size"] == 4 and saved["backbone"] == "r3d_10"
    assert saved["residual"] and saved["moco"]["queue_size"] == 2048 and saved["moco"]["momentum"] == 0.999
    usable = int(re.search(r"(\d+) usable videos", printed)[1])
    per_epoch = steps_per_epoch(usable, 4)
    assert 0 < usable and saved["milestones"] == [150 * per_epoch, 250 * per_epoch, 350 * per_epoch]


@pytest.mark.slow
def test_finetune_takes_the_recipe_and_a_bare_milestones_flag_clears_it(synthetic, tmp_path, capsys):
    out = tmp_path / "ft"
    common = ["--data", str(synthetic), "--store", str(tmp_path / "store"), "--out", str(out), "--no-evaluate",
              "--steps", "1", *[a for a in SMALL if a not in ("--batch-size", "4")]]
    assert main(["finetune", "--preset", "statistics", "--optimizer", "adamw", *common]) == 0
    printed = capsys.readouterr().out
    line = next(x for x in printed.splitlines() if x.startswith("preset statistics"))
    assert "lr=0.003" in line and "batch_size=30" in line and "optimizer" not in line
    assert "LR milestones at epochs 6, 12, 18, 24" in printed
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    settings = state["settings"]
    assert settings["lr"] == 0.003 and settings["batch_size"] == 30 and settings["optimizer"] == "adamw"
    per_epoch = int(re.search(r"\((\d+) steps per epoch", printed)[1])
    assert settings["milestones"] == [6 * per_epoch, 12 * per_epoch, 18 * per_epoch, 24 * per_epoch]
    config = state["config"]
    assert (config["backbone"], config["clip_len"], config["size"]) == ("r3d_10", 8, 32)  # explicit flags

    assert main(["finetune", "--preset", "statistics", "--milestones", *common, "--no-resume"]) == 0
    assert load_checkpoint(out / "checkpoints" / "last.pt")["settings"]["milestones"] == []


def test_backbone_settings_come_from_the_preset_unless_a_checkpoint_or_flag_fixes_them():
    import argparse

    from vsslkit.commands.train import TRAIN_DEFAULTS, _apply_preset

    preset = PRESETS["playback-order"]
    args = argparse.Namespace(**dict.fromkeys(BACKBONE_SETTINGS), batch_size=None, lr=None, optimizer=None,
                              epochs=None, steps=None)
    args.width = 0.5
    ckpt, taken = _apply_preset(args, preset, "finetune", sources=[("a.pt", {"backbone": "r3d_10", "clip_len": 8})],
                                defaults={"batch_size": 16, "lr": 0.01, "optimizer": "sgd"})
    assert ckpt == ["backbone='r3d_10'", "clip_len=8"]  # the checkpoint fixes the network
    assert (args.backbone, args.clip_len, args.width) == ("r3d_10", 8, 0.5)
    assert (args.norm, args.tgn_group_frames, args.size, args.lr, args.epochs) == ("tgn", 2, 112, 0.001, 150)
    assert {t.split("=")[0] for t in taken} == {"norm", "tgn_group_frames", "size", "residual", "batch_size", "lr",
                                                 "optimizer", "epochs"}
    plain = argparse.Namespace(**dict.fromkeys(BACKBONE_SETTINGS), batch_size=None, lr=None, optimizer=None,
                               epochs=None, steps=3)
    _, taken = _apply_preset(plain, None, "finetune", sources=[], defaults={"batch_size": 16, "lr": 0.01,
                                                                            "optimizer": "sgd"})
    assert taken == [] and plain.backbone == TRAIN_DEFAULTS["backbone"] and plain.lr == 0.01 and plain.epochs is None
    assert np.isclose(plain.width, TRAIN_DEFAULTS["width"])
