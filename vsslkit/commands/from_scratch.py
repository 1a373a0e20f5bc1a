"""`vsslkit train-joint`: seed 001's classification from scratch with tracking and arrow-of-time
branches (l = l_cls + w1 l_track + w2 l_dir), then the held-out scores (`vsslkit.train.from_scratch`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vsslkit.commands.arguments import device, int_at_least, non_negative_float, positive_float
from vsslkit.commands.store_args import add_store_format_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train-joint", help="seed 001: supervised classification from scratch + tracking (TimeCycle) + arrow of time",
        description="Train l = l_cls + w1 l_track + w2 l_dir from scratch on labelled videos (inflated ResNet-50 "
        "trunk, shared conv5), then score the test split: video-level Hit@1/Hit@5 over non-overlapping clips, "
        "direction accuracy and (synthetic set) the tracker's centre error against a constant-position baseline.")
    p.add_argument("--data", type=Path, required=True, help="dataset root (UCF101/HMDB51 layout or the synthetic set)")
    p.add_argument("--split", type=int, choices=(1, 2, 3), default=1)
    p.add_argument("--store", type=Path, default=None, help="frame store (default: $VSSLKIT_STORE or ~/.cache/vsslkit/frames)")
    p.add_argument("--short-side", type=int_at_least(8), default=128, help="short side of stored frames")
    add_store_format_arguments(p, default="auto")
    p.add_argument("--out", type=Path, required=True, help="run directory (metrics.csv, checkpoints/, result.json)")
    p.add_argument("--steps", type=int_at_least(1), default=300, help="optimiser steps (default 300)")
    p.add_argument("--track-weight", type=non_negative_float, default=25.0, help="w1 (default 25; 0 = no tracking branch)")
    p.add_argument("--direction-weight", type=non_negative_float, default=2.0,
                   help="w2 (default 2; 0 = no direction branch)")
    p.add_argument("--cycle-weight", type=non_negative_float, default=0.1,
                   help="λ of the long and skip cycle losses in l_track (default 0.1, the thesis)")
    p.add_argument("--sim-weight", type=non_negative_float, default=1.0,
                   help="factor of l_sim in l_track (default 1, the thesis; 0 avoids the collapse l_sim invites)")
    p.add_argument("--localiser", choices=("learned", "soft-argmax"), default="learned",
                   help="the tracking localiser: the thesis' convolutions + FC (default) or the weightless "
                   "affinity-weighted mean location (models.cycle.SoftArgmaxLocaliser)")
    p.add_argument("--padding", choices=("zeros", "circular"), default="zeros",
                   help="spatial padding of the trunk's convolutions (default zeros; circular takes away the "
                   "position cue a cycle loss can exploit: models.padding)")
    p.add_argument("--direction-stride", type=int_at_least(1), default=1,
                   help="frames between the direction clip's frames (default 1: consecutive, like the classification "
                   "clip; a wider stride shows more of the irreversible processes of synthetic version 3)")
    p.add_argument("--width", type=positive_float, default=0.125, help="trunk width (default 0.125: the CPU variant)")
    p.add_argument("--conv5-units", type=int_at_least(1), default=1, help="bottlenecks in conv5 (seed: 3)")
    p.add_argument("--clip-len", type=int_at_least(2), default=8, help="frames per classification/direction clip (seed: 13)")
    p.add_argument("--size", type=int_at_least(16), default=64, help="crop size (default 64)")
    p.add_argument("--batch-size", type=int_at_least(1), default=8)
    p.add_argument("--lr", type=positive_float, default=2e-4, help="Adam learning rate (seed: 2e-4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--track-radius", type=int_at_least(0), default=None,
                   help="score tracking with a local search window of this many feature-map cells around the "
                   "previous centre (default: the whole map)")
    p.add_argument("--device", type=device, default="auto", help="auto | cpu | cuda")
    p.add_argument("--workers", type=int_at_least(0), default=0)
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--log-every", type=int_at_least(1), default=10)
    p.add_argument("--checkpoint-every", type=int_at_least(1), default=100)
    p.add_argument("--evaluate", action=argparse.BooleanOptionalAction, default=True,
                   help="score the test split afterwards (default on)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=run_train_joint)


def run_train_joint(args: argparse.Namespace) -> int:
    import torch

    from vsslkit.commands.train import _load_index
    from vsslkit.eval.tracking import write_json
    from vsslkit.train.distributed import DistInfo
    from vsslkit.train.from_scratch import FromScratchConfig, evaluate_from_scratch, train_from_scratch

    torch.manual_seed(args.seed)
    info = DistInfo(device=torch.device(args.device if args.device != "auto" else
                                        ("cuda" if torch.cuda.is_available() else "cpu")))
    index, store = _load_index(args, info)
    config = FromScratchConfig(num_classes=index.num_classes, track_weight=args.track_weight,
                               direction_weight=args.direction_weight, width=args.width, conv5_units=args.conv5_units,
                               clip_len=args.clip_len, size=args.size, batch_size=args.batch_size, lr=args.lr,
                               seed=args.seed, cycle_weight=args.cycle_weight, sim_weight=args.sim_weight,
                               localiser=args.localiser, padding=args.padding, direction_stride=args.direction_stride)
    model, result = train_from_scratch(config, paths=index.paths, labels=index.labels, num_frames=index.num_frames,
                                       source=store, out_dir=args.out, steps=args.steps, device=info.device,
                                       workers=args.workers, resume=args.resume, progress=args.progress,
                                       log_every=args.log_every, checkpoint_every=args.checkpoint_every)
    last = result.history[-1] if result.history else {}
    shown = ", ".join(f"{k} {v:.3f}" for k, v in last.items() if isinstance(v, float) and k != "lr")
    print(f"trained {result.steps} steps in {result.seconds:.1f} s; {shown}; checkpoint {result.checkpoint}")
    if not args.evaluate:
        return 0
    from vsslkit.data.datasets import open_dataset
    from vsslkit.eval.confusion import confusion_groups

    test, unreadable = open_dataset(args.data, split=args.split, subset="test").with_frame_counts(store, progress=False)
    synthetic = Path(args.data) / "synthetic.json"
    scores = evaluate_from_scratch(model, config, test, store, device=info.device, seed=args.seed,
                                   synthetic_root=args.data if synthetic.is_file() else None,
                                   track_radius=args.track_radius)
    cls = scores["classification"]
    print(f"test: Hit@1 {100 * cls['hit_at_1']:.1f}%, Hit@5 {100 * cls['hit_at_5']:.1f}% "
          f"({cls['videos']} videos, {cls['clips']} non-overlapping clips)")
    if "direction" in scores:
        print(f"test: direction accuracy {100 * scores['direction']['direction_accuracy']:.1f}% "
              f"({scores['direction']['direction_clips']} clips, chance 50%)")
    if "tracking" in scores:
        t = scores["tracking"]
        print(f"test: tracking centre error {t['centre_error_px']:.2f} px (affinity), {t['localiser_error_px']:.2f} px "
              f"(localiser) vs constant position "
              f"{t['constant_baseline_px']:.2f} px, network-free pixel tracker {t['pixel_tracker_px']:.2f} px "
              f"({t['windows']} windows of {t['steps']} steps, gap {t['gap']})")
    if "tracking_not_scored" in scores:
        print(f"test: tracking not scored: {scores['tracking_not_scored']}")
    if "tracking_untrained" in scores:
        u = scores["tracking_untrained"]
        print(f"test: the same tracker untrained: {u['centre_error_px']:.2f} px (affinity), "
              f"{u['localiser_error_px']:.2f} px (localiser)")
    groups = confusion_groups(list(test.class_names))
    if groups:
        import numpy as np

        from vsslkit.eval.confusion import group_confusion, normalise_rows

        counts, names = group_confusion(np.asarray(cls["confusion_counts"]), list(test.class_names), groups)
        rows = normalise_rows(counts)
        scores["grouped_confusion"] = {"groups": names, "counts": counts.tolist()}
        print("grouped confusion (rows: true group, % predicted in each group): " + ", ".join(names))
        for name, row in zip(names, rows):
            print(f"  {name:>14}: " + " ".join(f"{100 * v:5.1f}" for v in row))
    for path, reason in unreadable:
        print(f"  NOT scored: {path}: {reason}")
    scores["config"] = config.to_json()
    scores["steps"] = result.steps
    print(f"wrote {write_json(Path(args.out) / 'result.json', scores)}")
    return 0
