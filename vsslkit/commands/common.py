"""What `vsslkit pretrain / finetune` and the evaluation commands share (a module of its own, so
neither command module imports the other): backbone settings read from checkpoints, the pretext
task flags, and the printout of a classifier's test scores.
"""

from __future__ import annotations

import argparse
from itertools import pairwise
from pathlib import Path
from typing import Any

from vsslkit.commands.arguments import int_at_least, unit_interval
from vsslkit.errors import UsageError

# Backbone and input settings a checkpoint fixes; None on the command line means "not given".
# tgn_group_frames (TGN's g) is one only for norm="tgn": a BN checkpoint does not fix it.
BACKBONE_SETTINGS: tuple[str, ...] = ("backbone", "width", "norm", "tgn_group_frames", "clip_len", "size", "residual")


def checkpoint_settings(checkpoint: str | Path) -> dict[str, Any]:
    """Backbone/input settings stored in a vsslkit checkpoint ({} for a foreign one).

    Pretraining checkpoints hold `config["pretrain"]` (a `PretrainConfig`); classifier
    checkpoints (`classifier.pt`, or a fine-tuning run's `checkpoints/last.pt`) hold a
    `ClassifierConfig`, which also fixes the clip `stride` of its test protocol.
    """
    from vsslkit.models.weights import read_checkpoint
    from vsslkit.train.pretrain import config_from_checkpoint
    from vsslkit.train.supervised import ClassifierConfig

    raw = read_checkpoint(checkpoint)
    config = raw.get("config") if isinstance(raw.get("config"), dict) else {}
    if config.get("pretrain"):
        try:
            pre = config_from_checkpoint(raw)
        except TypeError as exc:
            raise ValueError(f"{checkpoint}: unreadable pretraining config ({exc})") from exc
        return _backbone_settings(pre)
    if "num_classes" in config:
        cls = ClassifierConfig.from_json(config, source=checkpoint)
        return {**_backbone_settings(cls), "stride": cls.stride}
    return {}


def _backbone_settings(config: Any) -> dict[str, Any]:
    settings = {k: getattr(config, k) for k in BACKBONE_SETTINGS}
    if settings["norm"] != "tgn":
        del settings["tgn_group_frames"]
    return settings


def resolve_settings(
    args: argparse.Namespace,
    *,
    defaults: dict[str, Any],
    sources: list[tuple[str, dict[str, Any]]],
    flags: dict[str, str] | None = None,
) -> list[str]:
    """Fill `args` from explicit flags, else the checkpoints in `sources`, else `defaults`.

    `sources` are `(checkpoint, checkpoint_settings(...))`; only keys in `defaults` are resolved.
    `flags` maps a setting to its argparse dest when they differ (e.g. size -> crop_size). A flag
    that contradicts a checkpoint, or two checkpoints that disagree, raise `SystemExit` naming
    both. `--tgn-group-frames` given while the resolved norm is not tgn is a `UsageError`.
    Returns a line per setting taken from a checkpoint (for the log).
    """
    flags = flags or {}
    group_frames = getattr(args, "tgn_group_frames", None) if "tgn_group_frames" in defaults else None
    taken: list[str] = []
    for key, default in defaults.items():
        dest = flags.get(key, key)
        given = getattr(args, dest)
        found = [(src, settings[key]) for src, settings in sources if key in settings]
        for (src_a, a), (src_b, b) in pairwise(found):
            if not _same(a, b):
                raise SystemExit(f"{src_a} has {key}={a!r} but {src_b} has {key}={b!r}: they do not belong together")
        if given is not None and found and not _same(given, found[0][1]):
            option = "--" + dest.replace("_", "-")
            shown = (option if given else f"--no-{option[2:]}") if isinstance(given, bool) else f"{option} {given}"
            raise SystemExit(f"{shown} contradicts {found[0][0]} ({key}={found[0][1]!r}); "
                             f"drop {shown.split()[0]} to use the checkpoint's value")
        if given is None:
            value = found[0][1] if found else default
            setattr(args, dest, value)
            if found:
                taken.append(f"{key}={value!r}")
    if group_frames is not None and args.norm != "tgn":
        raise UsageError("--tgn-group-frames", f"sets the frames per group of temporal group norm; it needs --norm "
                         f"tgn (the norm here is {args.norm})")
    return taken


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) < 1e-9
    return a == b


def add_task_arguments(p: argparse.ArgumentParser) -> None:
    """--task, --speed-pool, --sampling: the pretext task flags shared by `pretrain` and `pretext-probe`."""
    p.add_argument("--task", default="speed-change-fine",
                   help="pace | speed-change-coarse | speed-change-fine | arrow-of-time | playback-order | "
                        "playback-speed | statistics | ascnet | tracking | none (with --contrastive)")
    p.add_argument("--speed-pool", type=int_at_least(1), nargs="*", default=None,
                   help="speeds: the fine task's pool (default 1 2 3) or the pace/coarse speeds (default 1 2 3 4)")
    p.add_argument("--sampling", choices=("location", "class"), default=None,
                   help="speed-change-fine: location-primary (default) or class-primary sampling")
    p.add_argument("--clips", type=int_at_least(2), default=None,
                   help="playback-order: clips per tuple n (2..6, default 3; n! order classes); train it with "
                        "--optimizer adamw --lr 0.001 (SGD leaves the pairwise head at chance on CPU budgets)")
    p.add_argument("--speeds", type=int, nargs="+", default=None,
                   help="playback-order / playback-speed: signed speeds, negative = reversed playback "
                        "(default: eq. 1's set for n clips / -3 1 3)")
    asc = p.add_argument_group("ascnet (--task ascnet; SPECS §3)")
    asc.add_argument("--gamma", type=unit_interval, default=None, help="L = gamma L_m + (1 - gamma) L_a (default 0.5)")
    asc.add_argument("--tau", type=unit_interval, default=None, help="EMA momentum of the target (default 0.99)")
    asc.add_argument("--head-hidden", type=int_at_least(1), default=None, help="hidden width of g and h (default 256)")
    asc.add_argument("--head-dim", type=int_at_least(1), default=None, help="output width of g and h (default 64)")
    asc.add_argument("--refresh-every", type=int_at_least(1), default=None,
                     help="optimiser steps between nearest-neighbour refreshes (default 50)")
    asc.add_argument("--exclude-same-group", action=argparse.BooleanOptionalAction, default=None,
                     help="never pick an SCP partner of the same group (default on)")
    p.add_argument("--targets", choices=("classification", "1d", "2d"), default=None,
                   help="statistics: 27 classification heads (default), 1D or 2D regression (seed 003 eqs. 8-9)")
    p.add_argument("--stat-head", choices=("pooled", "grid"), default=None,
                   help="statistics: the heads read the globally pooled features (default) or the last map "
                        "pooled to a 4x4 grid, which keeps where things are (the location labels need it)")
    p.add_argument("--stat-groups", nargs="+", default=None, metavar="GROUP",
                   help="statistics: train these label groups only: m1 m2 m3 (motion per pattern), mg (global "
                        "motion), a1 a2 a3, ag (appearance); default all. Motion groups only allow --residual")
    p.add_argument("--flow-sigma", type=float, default=None,
                   help="statistics: blur each flow by a Gaussian of this many px before the motion labels "
                        "(default 0: the paper's labels); damps flow noise, keeps object edges")


def task_options(args: argparse.Namespace) -> dict[str, Any]:
    """The task constructor's keyword arguments from `add_task_arguments`' flags (only those given)."""
    options: dict[str, Any] = {}
    if args.speed_pool:
        options["pool" if args.task == "speed-change-fine" else "speeds"] = tuple(args.speed_pool)
    if args.sampling:
        options["primary"] = args.sampling
    ascnet = {"gamma": "gamma", "tau": "tau", "head_hidden": "hidden", "head_dim": "dim",
              "refresh_every": "refresh_every", "exclude_same_group": "exclude_same_group"}
    given = {option: getattr(args, flag) for flag, option in ascnet.items() if getattr(args, flag, None) is not None}
    if given and args.task != "ascnet":
        flag = "--" + next(k for k, v in ascnet.items() if v in given).replace("_", "-")
        raise UsageError(flag, f"is an ascnet option; it needs --task ascnet (got --task {args.task})")
    options.update(given)
    if getattr(args, "clips", None) is not None:
        if args.task != "playback-order":
            raise UsageError("--clips", f"only --task playback-order takes it, not --task {args.task}")
        options["clips"] = args.clips
    if getattr(args, "speeds", None):
        if args.task not in ("playback-order", "playback-speed"):
            raise UsageError("--speeds", f"only --task playback-order / playback-speed take it (signed speeds), "
                             f"not --task {args.task}; see --speed-pool")
        options["speeds"] = tuple(args.speeds)
    if getattr(args, "targets", None):
        options["targets"] = args.targets
    if getattr(args, "stat_head", None):
        if args.task != "statistics":
            raise UsageError("--stat-head", f"only --task statistics takes it, not --task {args.task}")
        options["head"] = args.stat_head
    if getattr(args, "flow_sigma", None) is not None:
        if args.task != "statistics" or args.flow_sigma < 0:
            raise UsageError("--flow-sigma", f"takes a sigma >= 0 px with --task statistics (got {args.flow_sigma} "
                             f"with --task {args.task})")
        options["flow_sigma"] = args.flow_sigma
    if getattr(args, "stat_groups", None):
        from vsslkit.tasks.statistics import GROUPS

        bad = [g for g in args.stat_groups if g not in GROUPS]
        if args.task != "statistics" or bad:
            raise UsageError("--stat-groups", f"takes groups among {' '.join(GROUPS)} with --task statistics "
                             f"(got {' '.join(args.stat_groups)} with --task {args.task})")
        options["groups"] = tuple(dict.fromkeys(args.stat_groups))
    return options


def print_classifier_scores(metrics: dict[str, Any], *, averaging: str) -> None:
    """Clip accuracy, video accuracy, Hit@5, the most confused pairs and every unscored video."""
    print(f"test: video accuracy {100 * metrics['video_accuracy']:.1f}% ({averaging} averaging over "
          f"{metrics['num_clips'] // max(1, metrics['num_videos'])} clips), clip accuracy "
          f"{100 * metrics['clip_accuracy']:.1f}%, Hit@5 {100 * metrics['hit_at_5']:.1f}% "
          f"({metrics['num_videos']} of {metrics['test_videos']} test videos scored)")
    if metrics["most_confused"]:
        print("most confused (true -> predicted, fraction of the true class):")
        for pair in metrics["most_confused"]:
            print(f"  {pair['true']} -> {pair['predicted']}: {100 * pair['fraction']:.0f}%")
    for video in metrics["reduced_stride_videos"]:
        print(f"  short test video scored at stride {video['stride']}: {video['path']} ({video['frames']} frames)")
    for video in metrics["unscored_videos"]:
        print(f"  NOT scored: {video['path']}: {video['reason']}")
