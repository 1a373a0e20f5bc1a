"""`vsslkit pretrain` and `vsslkit finetune`: thin wrappers over tasks + ClipDataset + `fit`.

Both run alone or under `torchrun --nproc_per_node=N -m vsslkit ...` (DDP; rank 0 writes).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from vsslkit.commands.arguments import (
    device,
    fraction,
    int_at_least,
    non_negative_float,
    positive_float,
    probability,
)
from vsslkit.commands.common import (
    add_task_arguments,
    checkpoint_settings,
    print_classifier_scores,
    resolve_settings,
    task_options,
)
from vsslkit.commands.presets import (
    add_preset_argument,
    backbone_defaults,
    chosen,
    fill,
    milestone_note,
    preset_values,
)
from vsslkit.commands.store_args import add_store_format_arguments

TRAIN_DEFAULTS: dict[str, Any] = {"backbone": "r3d_10", "width": 0.25, "norm": "bn", "tgn_group_frames": 2,
                                  "clip_len": 16, "size": 64, "residual": False}
# The other settings a --preset may fill: None on the command line = not given (see commands.presets).
PRETRAIN_DEFAULTS: dict[str, Any] = {"task": "speed-change-fine", "contrastive": False, "queue_size": 2048,
                                     "ctr_weight": 0.5, "batch_size": 16, "lr": 0.05, "optimizer": "sgd"}
FINETUNE_DEFAULTS: dict[str, Any] = {"batch_size": 16, "lr": 0.01, "optimizer": "sgd"}


def _common(p: argparse.ArgumentParser, *, lr: float, batch_size: int) -> None:
    p.add_argument("--data", type=Path, required=True, help="dataset root (UCF101/HMDB51 layout or class folders)")
    p.add_argument("--split", type=int, choices=(1, 2, 3), default=1, help="official split (1-3)")
    p.add_argument("--store", type=Path, default=None,
                   help="frame store directory (default: $VSSLKIT_STORE or ~/.cache/vsslkit/frames)")
    p.add_argument("--short-side", type=int_at_least(8), default=128, help="short side of stored frames")
    add_store_format_arguments(p, default="auto")
    d = TRAIN_DEFAULTS
    p.add_argument("--backbone", default=None, help=f"backbone name (default {d['backbone']}; finetune: the --init checkpoint's)")
    p.add_argument("--width", type=positive_float, default=None, help=f"channel width multiplier (default {d['width']})")
    p.add_argument("--clip-len", type=int_at_least(2), default=None, help=f"frames per clip fed to the network (default {d['clip_len']})")
    p.add_argument("--size", type=int_at_least(8), default=None, help=f"crop size in pixels (default {d['size']})")
    p.add_argument("--residual", action=argparse.BooleanOptionalAction, default=None,
                   help="feed K residual frames (reads K+1 frames); default off")
    p.add_argument("--norm", choices=("bn", "tgn"), default=None, help="batch norm (default) or temporal group norm")
    p.add_argument("--tgn-group-frames", type=int_at_least(1), default=None, metavar="G",
                   help=f"--norm tgn: frames per temporal group g (default {d['tgn_group_frames']}; seed 002 Table 6)")
    p.add_argument("--no-flip", dest="flip", action="store_false",
                   help="no horizontal flips (needed when labels depend on direction, e.g. the synthetic set)")
    p.add_argument("--batch-size", type=int_at_least(1), default=None,
                   help=f"clips (tuples for multi-clip tasks) per step and per process (default {batch_size})")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int_at_least(1), default=None, help="passes over the data (default 1)")
    length.add_argument("--steps", type=int_at_least(1), default=None, help="optimizer steps (instead of --epochs)")
    p.add_argument("--lr", type=positive_float, default=None, help=f"learning rate (default {lr})")
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default=None, help="default sgd")
    p.add_argument("--milestones", type=int_at_least(1), nargs="*", default=None,
                   help="steps at which the LR is multiplied by 0.1 (default: none, or the --preset's epochs "
                        "converted to steps; a bare --milestones clears them)")
    add_preset_argument(p)
    p.add_argument("--out", type=Path, required=True, help="run directory (metrics.csv, checkpoints/)")
    p.add_argument("--device", type=device, default="auto", help="auto | cpu | cuda")
    p.add_argument("--amp", action="store_true", help="mixed precision (float16 on CUDA, bfloat16 on CPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the training step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from OUT/checkpoints/last.pt when it exists")
    p.add_argument("--workers", type=int_at_least(0), default=0, help="DataLoader worker processes")
    p.add_argument("--decode-on", choices=("cpu", "device"), default="cpu",
                   help="where JPEG frames are decoded: cpu (in the loader, default) or device (the whole batch "
                        "in the training step, nvJPEG on CUDA; needs --store-format jpeg)")
    p.add_argument("--log-every", type=int_at_least(1), default=10)
    p.add_argument("--checkpoint-every", type=int_at_least(1), default=100)
    p.add_argument("--tensorboard", action="store_true", help="also log to OUT/tensorboard")
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across GPUs (DDP on CUDA)")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("pretrain", help="self-supervised pretraining with a temporal pretext task",
                              description="Self-supervised pretraining with a temporal pretext task.")
    _common(p, lr=0.05, batch_size=16)
    add_task_arguments(p)
    p.set_defaults(task=None)  # default speed-change-fine, or the --preset's task
    p.add_argument("--contrastive", action=argparse.BooleanOptionalAction, default=None,
                   help="add the MoCo same-video branch")
    p.add_argument("--queue-size", type=int_at_least(1), default=None, help="MoCo queue length (default 2048)")
    p.add_argument("--ctr-weight", type=non_negative_float, default=None, help="weight of the contrastive loss (default 0.5)")
    p.add_argument("--same-batch", action="store_true", help="each video contributes every speed class")
    p.add_argument("--curriculum", type=probability, default=None, metavar="SWITCH",
                   help="statistics: the easy half of the videos first, all of them from this fraction of the "
                        "run on (seed 003 §3.4; e.g. 0.5)")
    p.add_argument("--video-half", choices=("easy", "hard", "random"), default=None,
                   help="statistics: train on one half of the videos only, the easy or hard half by the curriculum "
                        "score, or a random half (seed 003 T3's controls; same number of steps)")
    p.set_defaults(func=run_pretrain)

    p = subparsers.add_parser("finetune", help="supervised action classification from a checkpoint or from scratch",
                              description="Fine-tune (or linear-probe with --freeze) a classifier on the train split.")
    _common(p, lr=0.01, batch_size=16)
    p.add_argument("--label-fraction", type=fraction, default=1.0, help="fraction of labelled train videos (per class)")
    p.add_argument("--init", default="random",
                   help="'random', a pretraining checkpoint, or a classifier.pt (its backbone is used); "
                        "backbone/width/norm (and its g)/clip length/size/residual default to the checkpoint's")
    p.add_argument("--freeze", action="store_true", help="freeze the backbone (linear probe)")
    p.add_argument("--stride", type=int_at_least(1), default=1, help="frame stride of the training and test clips")
    p.add_argument("--dropout", type=probability, default=0.5)
    p.add_argument("--evaluate", action=argparse.BooleanOptionalAction, default=True,
                   help="after training, score the test split (10 clips per video) into OUT/result.json")
    p.add_argument("--clips-per-video", type=int_at_least(1), default=10, help="uniformly spaced test clips per video")
    p.add_argument("--averaging", choices=("softmax", "logits"), default="softmax",
                   help="how clip scores become a video score")
    p.add_argument("--eval-batch-size", type=int_at_least(1), default=16, help="test clips per forward pass")
    p.set_defaults(func=run_finetune)


def _apply_preset(args: argparse.Namespace, preset: Any, command: str, *, sources: list[tuple[str, dict[str, Any]]],
                  defaults: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Resolve every setting: explicit flag, else a checkpoint's (backbone settings), else the
    preset's, else the kit default. Returns the lines taken from checkpoints and from the preset."""
    unset = {k for k in TRAIN_DEFAULTS if getattr(args, k) is None}
    overlay = backbone_defaults(preset)
    from_checkpoint = resolve_settings(args, defaults={**TRAIN_DEFAULTS, **overlay}, sources=sources)
    in_checkpoint = {k for _, settings in sources for k in settings}
    from_preset = [f"{k}={getattr(args, k)!r}" for k in overlay if k in unset and k not in in_checkpoint
                   and (k != "tgn_group_frames" or args.norm == "tgn")]
    return from_checkpoint, from_preset + fill(args, preset_values(preset, command), defaults)


def _config(args: argparse.Namespace) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}


def _load_index(args: argparse.Namespace, info: Any, *, label_fraction: float = 1.0):
    """Train index with frame counts; rank 0 builds the frame store, the others wait for it."""
    from vsslkit.commands.store_args import open_store_from_args
    from vsslkit.data.datasets import label_fraction as take_fraction
    from vsslkit.data.datasets import open_dataset
    from vsslkit.data.store import default_store_dir
    from vsslkit.errors import UsageError
    from vsslkit.train.distributed import barrier

    index = open_dataset(args.data, split=args.split, subset="train")
    if index.problems and info.is_main:  # skipped split entries are reported, as `vsslkit data check` does
        print(f"{len(index.problems)} problem(s) in the split files of {args.data} (those entries are skipped):")
        for problem in index.problems:
            print(f"  {problem}")
    if len(index) == 0:
        raise UsageError(args.data, f"no training videos in split {args.split}"
                         + (" (see the split-file problems above)" if index.problems else ""))
    if label_fraction < 1.0:
        index = take_fraction(index, label_fraction, args.seed)
    store = open_store_from_args(args, args.store or default_store_dir(), dataset_root=args.data)
    if getattr(args, "decode_on", "cpu") == "device" and not hasattr(store, "read_encoded"):  # train-joint has no flag
        raise UsageError("--decode-on device", "needs a JPEG frame store (--store-format jpeg, or a dataset "
                         "prepared as JPEG); this store holds raw frames")
    if info.is_main:
        index_counts, skipped = index.with_frame_counts(store, progress=args.progress)
    barrier(info)
    if not info.is_main:
        index_counts, skipped = index.with_frame_counts(store, progress=False)
    if skipped and info.is_main:
        print(f"skipped {len(skipped)} unreadable videos:")
        for path, reason in skipped:
            print(f"  {path}: {reason}")
    if len(index_counts) == 0:
        raise UsageError(args.data, f"none of its {len(index)} training videos is readable (see the list above)")
    return index_counts, store


def _length(args: argparse.Namespace) -> tuple[int, int | None]:
    if args.steps is None and args.epochs is None:
        return 1, None
    return (args.epochs or 1), args.steps


def run_pretrain(args: argparse.Namespace) -> int:
    import torch

    from vsslkit.errors import UsageError
    from vsslkit.experiments.presets import milestone_steps, steps_per_epoch
    from vsslkit.train.distributed import cleanup, init_distributed
    from vsslkit.train.pretrain import MoCoConfig, PretrainConfig, build_task, pretrain

    preset = chosen(args)
    _, from_preset = _apply_preset(args, preset, "pretrain", sources=[], defaults=PRETRAIN_DEFAULTS)
    info = init_distributed(args.device)
    try:
        options = task_options(args)
        if preset is not None and args.task == preset.pretrain.task:  # its options belong to its task
            kept = {k: v for k, v in preset.pretrain.task_options.items() if k not in options}
            options = {**kept, **options}
            from_preset += [f"{k}={v!r}" for k, v in kept.items()]
        if preset is not None and info.is_main:
            print(f"preset {preset.name} ({preset.source}) set: {', '.join(from_preset) or 'nothing (all given)'}")
        torch.manual_seed(args.seed)
        moco = preset.pretrain.moco if preset is not None and preset.pretrain.moco is not None else MoCoConfig()
        config = PretrainConfig(
            task=args.task, task_options=options,
            moco=replace(moco, weight=args.ctr_weight, queue_size=args.queue_size) if args.contrastive else None,
            same_batch=args.same_batch, backbone=args.backbone, width=args.width,
            norm=args.norm, tgn_group_frames=args.tgn_group_frames, clip_len=args.clip_len, size=args.size,
            residual=args.residual, flip=args.flip,
            batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, milestones=tuple(args.milestones or ()),
            seed=args.seed, curriculum=args.curriculum, video_half=args.video_half)
        if args.video_half is not None and (args.curriculum is not None or args.task != "statistics"):
            raise UsageError("--video-half", "takes --task statistics and no --curriculum (it replaces the curriculum)")
        try:
            task = build_task(config)  # an unknown task or impossible task options fail before any data work
        except ValueError as exc:
            raise UsageError(f"--task {args.task}", str(exc)) from exc
        index, store = _load_index(args, info)
        if args.milestones is None and preset is not None and preset.milestone_epochs:
            usable = sum(n >= task.min_frames for n in index.num_frames)  # what pretrain's dataset keeps
            group = task.primary.heads["speed"] if config.same_batch else 1
            batch = max(1, config.batch_size // group)
            per_epoch = steps_per_epoch(max(1, usable), batch, info.world_size)
            config = replace(config, milestones=milestone_steps(preset.milestone_epochs, per_epoch))
            if info.is_main:
                print(milestone_note(preset.milestone_epochs, config.milestones, per_epoch, usable, batch,
                                     info.world_size))
        epochs, steps = _length(args)
        _, result = pretrain(config, paths=index.paths, num_frames=index.num_frames, source=store, out_dir=args.out,
                             epochs=epochs, max_steps=steps, device=info.device, workers=args.workers, amp=args.amp,
                             compile=args.compile, resume=args.resume, progress=args.progress,
                             log_every=args.log_every, checkpoint_every=args.checkpoint_every,
                             tensorboard=args.tensorboard, sync_bn=args.sync_bn, dist_info=info,
                             groups=index.groups, decode_on=args.decode_on)
        if info.is_main:
            last = result.history[-1] if result.history else {}
            accs = ", ".join(f"{k} {v:.3f}" for k, v in last.items() if k.endswith("acc"))
            print(f"pretrained {result.steps} steps in {result.seconds:.1f} s; final loss {result.final_loss:.4f}"
                  f"{'; ' + accs if accs else ''}; checkpoint {result.checkpoint}")
            if result.failures:
                print(f"{len(result.failures)} clip reads failed and were replaced (see {args.out}/read_failures.csv)")
    finally:
        cleanup()
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    import torch

    from vsslkit.experiments.presets import milestone_steps, steps_per_epoch
    from vsslkit.models import build_backbone
    from vsslkit.models.weights import load_backbone_weights
    from vsslkit.tasks import SupervisedTask
    from vsslkit.train.distributed import cleanup, init_distributed
    from vsslkit.train.supervised import ClassifierConfig, train_classifier

    preset = chosen(args)
    sources = [] if args.init == "random" else [(str(args.init), _settings_or_exit(args.init))]
    taken, from_preset = _apply_preset(args, preset, "finetune", sources=sources, defaults=FINETUNE_DEFAULTS)
    info = init_distributed(args.device)
    try:
        if taken and info.is_main:
            print(f"from {args.init}: {', '.join(taken)}")
        if preset is not None and info.is_main:
            print(f"preset {preset.name} ({preset.source}) set: {', '.join(from_preset) or 'nothing (all given)'}"
                  + ("" if preset.finetune else "; the seed gives no fine-tuning recipe (kit defaults)"))
        torch.manual_seed(args.seed)
        index, store = _load_index(args, info, label_fraction=args.label_fraction)
        recipe = preset.finetune if preset is not None else None
        if args.milestones is None and recipe is not None and recipe.milestone_epochs:
            need = SupervisedTask(num_classes=index.num_classes, clip_len=args.clip_len, stride=args.stride,
                                  extra_frames=int(args.residual)).min_frames
            usable = sum(n >= need for n in index.num_frames)  # what train_classifier's dataset keeps
            per_epoch = steps_per_epoch(max(1, usable), args.batch_size, info.world_size)
            args.milestones = list(milestone_steps(recipe.milestone_epochs, per_epoch))
            if info.is_main:
                print(milestone_note(recipe.milestone_epochs, tuple(args.milestones), per_epoch, usable,
                                     args.batch_size, info.world_size))
        args.milestones = args.milestones or []
        backbone = build_backbone(args.backbone, width=args.width, norm=args.norm,
                                  in_frames=args.clip_len if args.norm == "tgn" else None,
                                  tgn_group_frames=args.tgn_group_frames)
        if args.init != "random":
            try:
                report = load_backbone_weights(backbone, args.init)
            except (ValueError, TypeError, FileNotFoundError) as exc:
                raise SystemExit(str(exc)) from exc
            if info.is_main:
                print(f"loaded {report.loaded} backbone tensors from {args.init} [{report.source_key}]; "
                      f"ignored {len(report.unexpected)} others")
                if report.missing:
                    print(f"warning: {len(report.missing)} backbone tensors not in {args.init} "
                          f"(e.g. {report.missing[:3]}): they keep their random init")
        config = ClassifierConfig(backbone=args.backbone, width=args.width, num_classes=index.num_classes,
                                  clip_len=args.clip_len, stride=args.stride, size=args.size,
                                  residual=args.residual, freeze_backbone=args.freeze, dropout=args.dropout,
                                  class_names=tuple(index.class_names), init=str(args.init), flip=args.flip,
                                  norm=args.norm, tgn_group_frames=args.tgn_group_frames)
        epochs, steps = _length(args)
        _, result = train_classifier(
            backbone=backbone, config=config, paths=index.paths, labels=index.labels, num_frames=index.num_frames,
            source=store, out_dir=args.out, batch_size=args.batch_size, epochs=epochs, max_steps=steps, lr=args.lr,
            optimizer=args.optimizer, milestones=args.milestones, seed=args.seed, workers=args.workers,
            device=info.device, amp=args.amp, resume=args.resume, progress=args.progress, dist_info=info,
            log_every=args.log_every, checkpoint_every=args.checkpoint_every, decode_on=args.decode_on)
        if info.is_main:
            print(f"fine-tuned {result.steps} steps on {len(index)} videos ({index.num_classes} classes) in "
                  f"{result.seconds:.1f} s; final loss {result.final_loss:.4f}; classifier {Path(args.out) / 'classifier.pt'}")
    finally:
        cleanup()
    if info.is_main and args.evaluate:
        _test_protocol(args, store, num_train=len(index), device=info.device)
    return 0


def _settings_or_exit(checkpoint: str) -> dict[str, Any]:
    try:
        settings = checkpoint_settings(checkpoint)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise SystemExit(str(exc)) from exc
    settings.pop("stride", None)  # a fine-tuning stride is this run's choice, not the backbone's
    return settings


def _init_label(checkpoint: str) -> str:
    """What the backbone started from, for the report table ("random", "pretrain:pace+moco", "classifier")."""
    if checkpoint == "random":
        return "random"
    from vsslkit.models.weights import read_checkpoint

    config = read_checkpoint(checkpoint).get("config") or {}
    if isinstance(config, dict) and config.get("pretrain"):
        pre = config["pretrain"]
        return f"pretrain:{pre.get('task')}" + ("+moco" if pre.get("moco") or pre.get("contrastive") else "")
    if isinstance(config, dict) and "num_classes" in config:
        return "classifier"
    return "checkpoint"


def _test_protocol(args: argparse.Namespace, store: Any, *, num_train: int, device: Any) -> None:
    """Score OUT/classifier.pt on the test split exactly as `vsslkit evaluate --classifier` does."""
    from vsslkit.data.datasets import DatasetError, detect_layout, open_dataset
    from vsslkit.eval.results import Protocol, checkpoint_fields, file_sha256, write_result
    from vsslkit.eval.video_level import score_classifier_on
    from vsslkit.train.supervised import load_classifier

    try:
        test = open_dataset(args.data, split=args.split, subset="test")
    except DatasetError as exc:
        print(f"no test evaluation: {exc}")
        return
    test, unreadable = test.with_frame_counts(store, progress=args.progress)
    classifier_path = Path(args.out) / "classifier.pt"
    model, config = load_classifier(classifier_path)
    try:
        metrics = score_classifier_on(model, config, test, store, unreadable=unreadable,
                                      clips_per_video=args.clips_per_video, averaging=args.averaging,
                                      batch_size=args.eval_batch_size, device=device)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    print_classifier_scores(metrics, averaging=args.averaging)
    metrics["train_videos"] = num_train
    # the scored weights (not a protocol field: runs that differ only in seed must aggregate)
    metrics["classifier"] = {"path": str(classifier_path.resolve()), "sha256": file_sha256(classifier_path)}
    protocol = Protocol(
        task="video_classification", dataset=f"{Path(args.data).resolve().name} ({detect_layout(args.data)})",
        split=args.split, subset="test", label_fraction=args.label_fraction, clips_per_video=args.clips_per_video,
        averaging=args.averaging, crop=config.size, clip_len=config.clip_len, stride=config.stride,
        residual=config.residual, seed=args.seed, backbone=config.backbone,
        command=_command(args),
        extra={"init": _init_label(str(args.init)), "width": config.width, "norm": config.norm,
               **({"tgn_group_frames": config.tgn_group_frames} if config.norm == "tgn" else {}),
               "freeze_backbone": config.freeze_backbone, "steps": args.steps, "epochs": args.epochs,
               "lr": args.lr, "batch_size": args.batch_size, "flip": config.flip, "short_side": args.short_side},
        **checkpoint_fields(None if args.init == "random" else args.init),
    )
    if args.init == "random":
        protocol.checkpoint = "random"
    path = write_result(Path(args.out) / "result.json", metrics, protocol)
    print(f"wrote {path}")


_NEGATIVE_FLAGS = {"flip": "--no-flip", "progress": "--no-progress", "resume": "--no-resume",
                   "evaluate": "--no-evaluate"}


def _command(args: argparse.Namespace) -> str:
    """The command line: sys.argv when it ran `vsslkit finetune`, else rebuilt from the parsed flags
    (a library call such as `vsslkit.cli.main([...])` leaves no argv of its own)."""
    if "finetune" in sys.argv[1:]:
        return "vsslkit " + shlex.join(sys.argv[1:])
    parts = ["finetune"]
    for key, value in _config(args).items():
        if key in ("command", "version") or (key == "tgn_group_frames" and args.norm != "tgn"):
            continue
        if key in _NEGATIVE_FLAGS:
            parts += [] if value else [_NEGATIVE_FLAGS[key]]
            continue
        flag = "--" + key.replace("_", "-")
        if value is None or value is False or value == []:
            continue
        if value is True:
            parts.append(flag)
        else:
            parts += [flag, *map(str, value)] if isinstance(value, list) else [flag, str(value)]
    return "vsslkit " + shlex.join(parts)
