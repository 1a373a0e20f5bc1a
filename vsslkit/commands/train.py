"""`vsslkit pretrain` and `vsslkit finetune`: thin wrappers over tasks + ClipDataset + `fit`.

Both run alone or under `torchrun --nproc_per_node=N -m vsslkit ...` (DDP; rank 0 writes).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _common(p: argparse.ArgumentParser, *, lr: float, batch_size: int) -> None:
    p.add_argument("--data", type=Path, required=True, help="dataset root (UCF101/HMDB51 layout or class folders)")
    p.add_argument("--split", type=int, default=1, help="official split (1-3)")
    p.add_argument("--store", type=Path, default=None,
                   help="frame store directory (default: $VSSLKIT_STORE or ~/.cache/vsslkit/frames)")
    p.add_argument("--short-side", type=int, default=128, help="short side of stored frames")
    p.add_argument("--backbone", default="r3d_10")
    p.add_argument("--width", type=float, default=0.25, help="channel width multiplier")
    p.add_argument("--clip-len", type=int, default=16, help="frames per clip fed to the network")
    p.add_argument("--size", type=int, default=64, help="crop size in pixels")
    p.add_argument("--residual", action="store_true", help="feed K residual frames (reads K+1 frames)")
    p.add_argument("--norm", choices=("bn", "tgn"), default="bn", help="batch norm or temporal group norm")
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


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("pretrain", help="self-supervised pretraining with a temporal pretext task",
                              description="Self-supervised pretraining with a temporal pretext task.")
    _common(p, lr=0.05, batch_size=16)
    p.add_argument("--task", default="speed-change-fine", help="pace | speed-change-coarse | speed-change-fine")
    p.add_argument("--contrastive", action="store_true", help="add the MoCo same-video branch")
    p.add_argument("--queue-size", type=int, default=2048, help="MoCo queue length")
    p.add_argument("--ctr-weight", type=float, default=0.5, help="weight of the contrastive loss")
    p.add_argument("--same-batch", action="store_true", help="each video contributes every speed class")
    p.add_argument("--speed-pool", type=int, nargs="*", default=None,
                   help="speeds: the fine task's pool (default 1 2 3) or the pace/coarse speeds (default 1 2 3 4)")
    p.add_argument("--sampling", choices=("location", "class"), default=None,
                   help="speed-change-fine: location-primary (default) or class-primary sampling")
    p.set_defaults(func=run_pretrain)

    p = subparsers.add_parser("finetune", help="supervised action classification from a checkpoint or from scratch",
                              description="Fine-tune (or linear-probe with --freeze) a classifier on the train split.")
    _common(p, lr=0.01, batch_size=16)
    p.add_argument("--label-fraction", type=float, default=1.0, help="fraction of labelled train videos (per class)")
    p.add_argument("--init", default="random", help="pretraining checkpoint (.pt) or 'random'")
    p.add_argument("--freeze", action="store_true", help="freeze the backbone (linear probe)")
    p.add_argument("--stride", type=int, default=1, help="frame stride of the training clips")
    p.add_argument("--dropout", type=float, default=0.5)
    p.set_defaults(func=run_finetune)


def _config(args: argparse.Namespace) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}


def _load_index(args: argparse.Namespace, info: Any, *, label_fraction: float = 1.0):
    """Train index with frame counts; rank 0 builds the frame store, the others wait for it."""
    from vsslkit.data.datasets import label_fraction as take_fraction
    from vsslkit.data.datasets import open_dataset
    from vsslkit.data.store import FrameStore, default_store_dir
    from vsslkit.train.distributed import barrier

    index = open_dataset(args.data, split=args.split, subset="train")
    if label_fraction < 1.0:
        index = take_fraction(index, label_fraction, args.seed)
    store = FrameStore(args.store or default_store_dir(), short_side=args.short_side)
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

    info = init_distributed(args.device)
    try:
        torch.manual_seed(args.seed)
        index, store = _load_index(args, info)
        options: dict[str, Any] = {}
        if args.speed_pool:
            options["pool" if args.task == "speed-change-fine" else "speeds"] = tuple(args.speed_pool)
        if args.sampling:
            options["primary"] = args.sampling
        config = PretrainConfig(
            task=args.task, task_options=options, contrastive=args.contrastive, ctr_weight=args.ctr_weight,
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
    from vsslkit.train.distributed import cleanup, init_distributed
    from vsslkit.train.supervised import ClassifierConfig, load_backbone_weights, train_classifier

    info = init_distributed(args.device)
    try:
        torch.manual_seed(args.seed)
        index, store = _load_index(args, info, label_fraction=args.label_fraction)
        backbone = build_backbone(args.backbone, width=args.width, norm=args.norm,
                                  in_frames=args.clip_len if args.norm == "tgn" else None)
        if args.init != "random":
            missing = load_backbone_weights(backbone, args.init)
            if missing and info.is_main:
                print(f"warning: {len(missing)} backbone weights not in {args.init} (e.g. {missing[:3]})")
        config = ClassifierConfig(backbone=args.backbone, width=args.width, num_classes=index.num_classes,
                                  clip_len=args.clip_len, stride=args.stride, size=args.size,
                                  residual=args.residual, freeze_backbone=args.freeze, dropout=args.dropout,
                                  class_names=tuple(index.class_names), init=str(args.init), flip=args.flip)
        epochs, steps = _length(args)
        milestones = args.milestones
        _, result = train_classifier(
            backbone=backbone, config=config, paths=index.paths, labels=index.labels, num_frames=index.num_frames,
            source=store, out_dir=args.out, batch_size=args.batch_size, epochs=epochs, max_steps=steps, lr=args.lr,
            optimizer=args.optimizer, milestones=milestones, seed=args.seed, workers=args.workers,
            device=info.device, amp=args.amp, resume=args.resume, progress=args.progress, dist_info=info,
            log_every=args.log_every, checkpoint_every=args.checkpoint_every)
        if info.is_main:
            print(f"fine-tuned {result.steps} steps on {len(index)} videos ({index.num_classes} classes) in "
                  f"{result.seconds:.1f} s; final loss {result.final_loss:.4f}; classifier {Path(args.out) / 'classifier.pt'}")
    finally:
        cleanup()
    return 0
