"""`vsslkit pretrain` and `vsslkit finetune`: thin wrappers over tasks + ClipDataset + `fit`.

Both run alone or under `torchrun --nproc_per_node=N -m vsslkit ...` (DDP; rank 0 writes).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

from vsslkit.commands.store_args import add_store_format_arguments

# Backbone and input settings a checkpoint fixes; None on the command line means "not given".
BACKBONE_SETTINGS: tuple[str, ...] = ("backbone", "width", "norm", "clip_len", "size", "residual")
TRAIN_DEFAULTS: dict[str, Any] = {"backbone": "r3d_10", "width": 0.25, "norm": "bn", "clip_len": 16, "size": 64,
                                  "residual": False}


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
        return {k: getattr(pre, k) for k in BACKBONE_SETTINGS}
    if "num_classes" in config:
        cls = ClassifierConfig.from_json(config, source=checkpoint)
        return {**{k: getattr(cls, k) for k in BACKBONE_SETTINGS}, "stride": cls.stride}
    return {}


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
    both. Returns a line per setting taken from a checkpoint (for the log).
    """
    flags = flags or {}
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
    return taken


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) < 1e-9
    return a == b


def _common(p: argparse.ArgumentParser, *, lr: float, batch_size: int) -> None:
    p.add_argument("--data", type=Path, required=True, help="dataset root (UCF101/HMDB51 layout or class folders)")
    p.add_argument("--split", type=int, default=1, help="official split (1-3)")
    p.add_argument("--store", type=Path, default=None,
                   help="frame store directory (default: $VSSLKIT_STORE or ~/.cache/vsslkit/frames)")
    p.add_argument("--short-side", type=int, default=128, help="short side of stored frames")
    add_store_format_arguments(p, default="auto")
    d = TRAIN_DEFAULTS
    p.add_argument("--backbone", default=None, help=f"backbone name (default {d['backbone']}; finetune: the --init checkpoint's)")
    p.add_argument("--width", type=float, default=None, help=f"channel width multiplier (default {d['width']})")
    p.add_argument("--clip-len", type=int, default=None, help=f"frames per clip fed to the network (default {d['clip_len']})")
    p.add_argument("--size", type=int, default=None, help=f"crop size in pixels (default {d['size']})")
    p.add_argument("--residual", action=argparse.BooleanOptionalAction, default=None,
                   help="feed K residual frames (reads K+1 frames); default off")
    p.add_argument("--norm", choices=("bn", "tgn"), default=None, help="batch norm (default) or temporal group norm")
    p.add_argument("--no-flip", dest="flip", action="store_false",
                   help="no horizontal flips (needed when labels depend on direction, e.g. the synthetic set)")
    p.add_argument("--batch-size", type=int, default=batch_size, help="clips per step and per process")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, default=None)
    length.add_argument("--steps", type=int, default=None, help="optimizer steps (instead of --epochs)")
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    p.add_argument("--milestones", type=int, nargs="*", default=[], help="steps at which the LR is multiplied by 0.1")
    p.add_argument("--out", type=Path, required=True, help="run directory (metrics.csv, checkpoints/)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--amp", action="store_true", help="mixed precision (float16 on CUDA, bfloat16 on CPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the training step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from OUT/checkpoints/last.pt when it exists")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--tensorboard", action="store_true", help="also log to OUT/tensorboard")
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across GPUs (DDP on CUDA)")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def add_task_arguments(p: argparse.ArgumentParser) -> None:
    """--task, --speed-pool, --sampling: the pretext task flags shared by `pretrain` and `pretext-probe`."""
    p.add_argument("--task", default="speed-change-fine", help="pace | speed-change-coarse | speed-change-fine")
    p.add_argument("--speed-pool", type=int, nargs="*", default=None,
                   help="speeds: the fine task's pool (default 1 2 3) or the pace/coarse speeds (default 1 2 3 4)")
    p.add_argument("--sampling", choices=("location", "class"), default=None,
                   help="speed-change-fine: location-primary (default) or class-primary sampling")


def task_options(args: argparse.Namespace) -> dict[str, Any]:
    """The task constructor's keyword arguments from `add_task_arguments`' flags (only those given)."""
    options: dict[str, Any] = {}
    if args.speed_pool:
        options["pool" if args.task == "speed-change-fine" else "speeds"] = tuple(args.speed_pool)
    if args.sampling:
        options["primary"] = args.sampling
    return options


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("pretrain", help="self-supervised pretraining with a temporal pretext task",
                              description="Self-supervised pretraining with a temporal pretext task.")
    _common(p, lr=0.05, batch_size=16)
    add_task_arguments(p)
    p.add_argument("--contrastive", action="store_true", help="add the MoCo same-video branch")
    p.add_argument("--queue-size", type=int, default=2048, help="MoCo queue length")
    p.add_argument("--ctr-weight", type=float, default=0.5, help="weight of the contrastive loss")
    p.add_argument("--same-batch", action="store_true", help="each video contributes every speed class")
    p.set_defaults(func=run_pretrain)

    p = subparsers.add_parser("finetune", help="supervised action classification from a checkpoint or from scratch",
                              description="Fine-tune (or linear-probe with --freeze) a classifier on the train split.")
    _common(p, lr=0.01, batch_size=16)
    p.add_argument("--label-fraction", type=float, default=1.0, help="fraction of labelled train videos (per class)")
    p.add_argument("--init", default="random",
                   help="'random', a pretraining checkpoint, or a classifier.pt (its backbone is used); "
                        "backbone/width/norm/clip length/size/residual default to the checkpoint's")
    p.add_argument("--freeze", action="store_true", help="freeze the backbone (linear probe)")
    p.add_argument("--stride", type=int, default=1, help="frame stride of the training and test clips")
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--evaluate", action=argparse.BooleanOptionalAction, default=True,
                   help="after training, score the test split (10 clips per video) into OUT/result.json")
    p.add_argument("--clips-per-video", type=int, default=10, help="uniformly spaced test clips per video")
    p.add_argument("--averaging", choices=("softmax", "logits"), default="softmax",
                   help="how clip scores become a video score")
    p.add_argument("--eval-batch-size", type=int, default=16, help="test clips per forward pass")
    p.set_defaults(func=run_finetune)


def _config(args: argparse.Namespace) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}


def _load_index(args: argparse.Namespace, info: Any, *, label_fraction: float = 1.0):
    """Train index with frame counts; rank 0 builds the frame store, the others wait for it."""
    from vsslkit.commands.store_args import open_store_from_args
    from vsslkit.data.datasets import label_fraction as take_fraction
    from vsslkit.data.datasets import open_dataset
    from vsslkit.data.store import default_store_dir
    from vsslkit.train.distributed import barrier

    index = open_dataset(args.data, split=args.split, subset="train")
    if label_fraction < 1.0:
        index = take_fraction(index, label_fraction, args.seed)
    store = open_store_from_args(args, args.store or default_store_dir(), dataset_root=args.data)
    if info.is_main:
        index_counts, skipped = index.with_frame_counts(store, progress=args.progress)
    barrier(info)
    if not info.is_main:
        index_counts, skipped = index.with_frame_counts(store, progress=False)
    if skipped and info.is_main:
        print(f"skipped {len(skipped)} unreadable videos:")
        for path, reason in skipped:
            print(f"  {path}: {reason}")
    return index_counts, store


def _length(args: argparse.Namespace) -> tuple[int, int | None]:
    if args.steps is None and args.epochs is None:
        return 1, None
    return (args.epochs or 1), args.steps


def run_pretrain(args: argparse.Namespace) -> int:
    import torch

    from vsslkit.train.distributed import cleanup, init_distributed
    from vsslkit.train.pretrain import PretrainConfig, pretrain

    resolve_settings(args, defaults=TRAIN_DEFAULTS, sources=[])
    info = init_distributed(args.device)
    try:
        torch.manual_seed(args.seed)
        index, store = _load_index(args, info)
        config = PretrainConfig(
            task=args.task, task_options=task_options(args), contrastive=args.contrastive, ctr_weight=args.ctr_weight,
            queue_size=args.queue_size, same_batch=args.same_batch, backbone=args.backbone, width=args.width,
            norm=args.norm, clip_len=args.clip_len, size=args.size, residual=args.residual, flip=args.flip,
            batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, milestones=tuple(args.milestones),
            seed=args.seed)
        epochs, steps = _length(args)
        _, result = pretrain(config, paths=index.paths, num_frames=index.num_frames, source=store, out_dir=args.out,
                             epochs=epochs, max_steps=steps, device=info.device, workers=args.workers, amp=args.amp,
                             compile=args.compile, resume=args.resume, progress=args.progress,
                             log_every=args.log_every, checkpoint_every=args.checkpoint_every,
                             tensorboard=args.tensorboard, sync_bn=args.sync_bn, dist_info=info)
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

    from vsslkit.models import build_backbone
    from vsslkit.models.weights import load_backbone_weights
    from vsslkit.train.distributed import cleanup, init_distributed
    from vsslkit.train.supervised import ClassifierConfig, train_classifier

    sources = [] if args.init == "random" else [(str(args.init), _settings_or_exit(args.init))]
    taken = resolve_settings(args, defaults=TRAIN_DEFAULTS, sources=sources)
    info = init_distributed(args.device)
    try:
        if taken and info.is_main:
            print(f"from {args.init}: {', '.join(taken)}")
        torch.manual_seed(args.seed)
        index, store = _load_index(args, info, label_fraction=args.label_fraction)
        backbone = build_backbone(args.backbone, width=args.width, norm=args.norm,
                                  in_frames=args.clip_len if args.norm == "tgn" else None)
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
                                  norm=args.norm)
        epochs, steps = _length(args)
        _, result = train_classifier(
            backbone=backbone, config=config, paths=index.paths, labels=index.labels, num_frames=index.num_frames,
            source=store, out_dir=args.out, batch_size=args.batch_size, epochs=epochs, max_steps=steps, lr=args.lr,
            optimizer=args.optimizer, milestones=args.milestones, seed=args.seed, workers=args.workers,
            device=info.device, amp=args.amp, resume=args.resume, progress=args.progress, dist_info=info,
            log_every=args.log_every, checkpoint_every=args.checkpoint_every)
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
        return f"pretrain:{pre.get('task')}" + ("+moco" if pre.get("contrastive") else "")
    if isinstance(config, dict) and "num_classes" in config:
        return "classifier"
    return "checkpoint"


def _test_protocol(args: argparse.Namespace, store: Any, *, num_train: int, device: Any) -> None:
    """Score OUT/classifier.pt on the test split exactly as `vsslkit evaluate --classifier` does."""
    from vsslkit.commands.evaluate import print_classifier_scores, score_classifier_on
    from vsslkit.data.datasets import DatasetError, detect_layout, open_dataset
    from vsslkit.eval.results import Protocol, checkpoint_fields, file_sha256, write_result
    from vsslkit.train.supervised import load_classifier

    try:
        test = open_dataset(args.data, split=args.split, subset="test")
    except DatasetError as exc:
        print(f"no test evaluation: {exc}")
        return
    test, unreadable = test.with_frame_counts(store, progress=args.progress)
    classifier_path = Path(args.out) / "classifier.pt"
    model, config = load_classifier(classifier_path)
    metrics = score_classifier_on(model, config, test, store, unreadable=unreadable,
                                  clips_per_video=args.clips_per_video, averaging=args.averaging,
                                  batch_size=args.eval_batch_size, device=device)
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
        if key in ("command", "version"):
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
