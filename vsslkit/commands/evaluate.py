"""`vsslkit retrieve | evaluate | report | pretext-eval | pretext-probe`: evaluation protocols,
each result saved with its protocol.

Heavy imports (torch, the models) happen inside the command functions so `vsslkit --help` stays fast.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from vsslkit.atomic import write_text_atomic
from vsslkit.commands.arguments import device, int_at_least
from vsslkit.commands.common import (
    add_task_arguments,
    checkpoint_settings,
    print_classifier_scores,
    resolve_settings,
    task_options,
)
from vsslkit.commands.store_args import add_store_format_arguments
from vsslkit.data.store import default_store_dir
from vsslkit.eval.pooling import POOLING_HELP, POOLINGS

DEFAULT_STORE = default_store_dir()
LAYERS = ("pool3", "pool4", "pool5")
# Used when neither a flag nor the checkpoint says otherwise ("size" is --crop-size here).
EVAL_DEFAULTS: dict[str, Any] = {"backbone": "tiny_r3d", "width": 1.0, "norm": "bn", "tgn_group_frames": 2,
                                 "clip_len": 16, "size": 112, "residual": False, "stride": 1}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the top-level `retrieve`, `evaluate` and `report` commands."""
    p = subparsers.add_parser(
        "retrieve", help="nearest-neighbour video retrieval R@k (test queries the train split)",
        description="Video retrieval, seed-000 protocol: 10 centre-cropped clips per video, layer features "
        "pooled and averaged, standardised with train-split statistics, cosine similarity, R@1/5/10/20/50. "
        "A folder-per-class dataset (no test split) is evaluated leave-one-out. Backbone, width, norm, clip "
        "length, crop size and residual input default to the checkpoint's own settings.",
    )
    _add_common(p)
    p.add_argument("--layer", default="pool5", help="backbone layer to pool (default: pool5)")
    p.add_argument("--pooling", choices=POOLINGS, default="avg", help=POOLING_HELP)
    p.add_argument("--ks", default="1,5,10,20,50", help="comma-separated k values")
    p.add_argument("--out", type=Path, help="write the result JSON here")
    p.set_defaults(func=run_retrieve)

    e = subparsers.add_parser(
        "evaluate", help="all frozen-feature protocols (+ a fine-tuned classifier) for one checkpoint",
        description="Retrieval at pool3/pool4/pool5, leave-one-out linear SVM on a class-balanced subset of the "
        "test videos (seed 003 §6.3), pair same/not-same linear SVM on 12 distances per layer with 10-fold CV "
        "(seed 003 §6.4), and video-level accuracy of --classifier when given (fine-tune with `vsslkit finetune`; "
        "same test protocol, so the same number). Backbone settings default to the checkpoints' own.",
    )
    _add_common(e)
    e.add_argument("--pooling", choices=POOLINGS, default="avg", help=POOLING_HELP)
    e.add_argument("--svm-videos", type=int, default=60, help="test videos for the leave-one-out SVM (0: skip)")
    e.add_argument("--pairs", type=int, default=200, help="pairs for the pair-similarity SVM (0: skip)")
    e.add_argument("--layers", nargs="+", choices=LAYERS, default=list(LAYERS),
                   help="layers to pool (default all three): seed 003 uses pool4 for scenes (LOO SVM) and "
                        "pool3+pool4+pool5 (12 distances each) for pair similarity")
    e.add_argument("--folds", type=int, default=10, help="folds of the pair-similarity SVM")
    e.add_argument("--classifier", type=Path, help="fine-tuned classifier checkpoint to score at video level")
    e.add_argument("--averaging", choices=("softmax", "logits"), default="softmax")
    e.add_argument("--out-dir", type=Path, required=True, help="one result JSON per protocol is written here")
    e.set_defaults(func=run_evaluate)

    r = subparsers.add_parser("report", help="markdown table of result JSON files",
                              description="Tabulate result files; runs that differ only in seed are averaged.")
    r.add_argument("results", nargs="+", type=Path, help="result JSON files")
    r.add_argument("--columns", help="comma-separated metric names (dotted, e.g. recall.1); default: all")
    r.add_argument("--no-aggregate", action="store_true", help="one row per file, no mean ± std over seeds")
    r.add_argument("--out", type=Path, help="also write the table to this file")
    r.set_defaults(func=run_report)

    t = subparsers.add_parser(
        "pretext-eval", help="held-out pretext accuracy of a pretraining checkpoint, per head, vs chance",
        description="Training logs score the batches being trained on. This draws the checkpoint's own pretext "
        "task (no labels needed) from videos of one subset, e.g. the test split it never trained on, runs "
        "centre crops in eval mode and prints accuracy vs majority label and chance, and the confusion "
        "matrix per head (which change locations get confused with their neighbours).",
    )
    t.add_argument("--checkpoint", type=Path, required=True, help="a `vsslkit pretrain` checkpoint")
    t.add_argument("--data", type=Path, required=True, help="dataset root (UCF101/HMDB51 layout or class folders)")
    t.add_argument("--split", type=int, default=1)
    t.add_argument("--subset", choices=("train", "test"), default="test", help="videos to draw from (default test)")
    t.add_argument("--clips-per-video", type=int, default=4)
    t.add_argument("--short-side", type=int, default=128, help="short side of stored frames (as in training)")
    t.add_argument("--store", type=Path, default=DEFAULT_STORE, help=f"frame store folder (default {DEFAULT_STORE})")
    add_store_format_arguments(t, default="auto")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--seed", type=int, default=0, help="seeds the drawn clips (same seed, same clips)")
    t.add_argument("--device", type=device, default="cpu")
    t.add_argument("--out", type=Path, help="also write the result JSON here")
    t.add_argument("--probe", action="store_true",
                   help="statistics: also fit the network-free block-energy probe on train-split clips")
    t.set_defaults(func=run_pretext_eval)

    q = subparsers.add_parser(
        "pretext-probe", help="network-free floor: motion energy + gradient boosting on a pretext task",
        description="Does the data show the pretext signal at all? Fits scikit-learn's gradient boosting on the "
        "per-element motion energy of residual clips from the training videos and scores clips of the test "
        "videos, per head, against majority label and chance. No network, no action labels. "
        "--task arrow-of-time (built into the probe): forward vs reversed constant-stride clips (strides from "
        "--speed-pool, default 1) on signed temporal-asymmetry features; near 50 % means the data's films look "
        "the same played backwards (synthetic --version 2), far above means time's direction is visible (--version 3).",
    )
    q.add_argument("--data", type=Path, required=True, help="dataset root (UCF101/HMDB51 layout)")
    q.add_argument("--split", type=int, default=1)
    add_task_arguments(q)
    q.add_argument("--clip-len", type=int, default=8)
    q.add_argument("--size", type=int, default=56, help="centre crop in pixels")
    q.add_argument("--train-clips-per-video", type=int, default=8)
    q.add_argument("--test-clips-per-video", type=int, default=4)
    q.add_argument("--short-side", type=int, default=128, help="short side of stored frames")
    q.add_argument("--store", type=Path, default=DEFAULT_STORE, help=f"frame store folder (default {DEFAULT_STORE})")
    add_store_format_arguments(q, default="auto")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=run_pretext_probe)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="dataset root (UCF101, HMDB51 or folders)")
    p.add_argument("--split", type=int, default=1, help="official split (default 1)")
    p.add_argument("--checkpoint", required=True, help="pretrained checkpoint, or 'random' for random init")
    d = EVAL_DEFAULTS
    p.add_argument("--backbone", default=None, help=f"backbone name (default: the checkpoint's, else {d['backbone']})")
    p.add_argument("--width", type=float, default=None, help=f"channel width multiplier (default: the checkpoint's, else {d['width']})")
    p.add_argument("--norm", choices=("bn", "tgn"), default=None, help="default: the checkpoint's, else bn")
    p.add_argument("--tgn-group-frames", type=int_at_least(1), default=None, metavar="G",
                   help=f"--norm tgn: frames per temporal group (default: the checkpoint's, else {d['tgn_group_frames']})")
    p.add_argument("--clip-len", type=int, default=None, help=f"default: the checkpoint's, else {d['clip_len']}")
    p.add_argument("--stride", type=int, default=None,
                   help="clip stride (default: the classifier's, else 1); short videos get the largest stride that fits")
    p.add_argument("--clips-per-video", type=int, default=10)
    p.add_argument("--crop-size", type=int, default=None, help=f"default: the checkpoint's size, else {d['size']}")
    p.add_argument("--residual", action=argparse.BooleanOptionalAction, default=None,
                   help="feed frame differences (default: as the checkpoint was trained)")
    p.add_argument("--short-side", type=int, default=128, help="short side of stored frames (as in training)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", type=device, default="cpu")
    p.add_argument("--seed", type=int, default=0, help="seeds random init, pair sampling and SVMs")
    p.add_argument("--store", type=Path, default=DEFAULT_STORE, help=f"frame store folder (default {DEFAULT_STORE})")
    add_store_format_arguments(p, default="auto")


# ----------------------------------------------------------------------------- shared steps


def _resolve(args: argparse.Namespace) -> None:
    """Backbone/input settings: explicit flags, else --checkpoint's / --classifier's config, else defaults."""
    sources = []
    for ckpt in (args.checkpoint, getattr(args, "classifier", None)):
        if ckpt is not None and str(ckpt) != "random":
            try:
                sources.append((str(ckpt), checkpoint_settings(ckpt)))
            except (ValueError, TypeError, FileNotFoundError) as exc:
                raise SystemExit(str(exc)) from exc
    taken = resolve_settings(args, defaults=EVAL_DEFAULTS, sources=sources, flags={"size": "crop_size"})
    if taken:
        print(f"from the checkpoint: {', '.join(taken)}", file=sys.stderr)


def _dataset(args: argparse.Namespace) -> dict[str, Any]:
    """Gallery (train) and query (test) indexes with frame counts; unusable videos listed, never hidden.

    A video too short for --stride is kept with the largest stride that fits (reported); only a
    video shorter than one stride-1 clip is left out, by name.
    """
    from vsslkit.commands.store_args import open_store_from_args
    from vsslkit.data.datasets import detect_layout, open_dataset
    from vsslkit.eval.features import fitting_strides

    store = open_store_from_args(args, args.store, dataset_root=args.data)
    layout = detect_layout(args.data)
    if layout == "folder":  # no official test split: every video queries all the others
        train = open_dataset(args.data, args.split, "train")
        test, mode = None, "leave_one_out"
    else:
        train = open_dataset(args.data, args.split, "train")
        test, mode = open_dataset(args.data, args.split, "test"), "test_to_train"
    skipped: list[tuple[str, str]] = []
    unreadable: dict[str, list] = {}
    reduced: set[str] = set()

    def usable(index, name):
        index, bad = index.with_frame_counts(store)
        unreadable[name] = bad
        skipped.extend((str(p), r) for p, r in bad)
        strides = fitting_strides(index.num_frames, clip_len=args.clip_len, stride=args.stride, residual=args.residual)
        keep = [i for i, s in enumerate(strides) if s is not None]
        for i, s in enumerate(strides):
            if s is None:
                skipped.append((str(index.paths[i]), f"{index.num_frames[i]} frames: shorter than one test clip"))
            elif s != args.stride:
                reduced.add(str(index.paths[i]))
                print(f"{index.paths[i]}: {index.num_frames[i]} frames, test clips at stride {s}", file=sys.stderr)
        return index, index.subset(keep), [strides[i] for i in keep]

    train_all, train, train_strides = usable(train, "train")
    test_all, test, test_strides = usable(test, "test") if test is not None else (train_all, train, train_strides)
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if len(train) < 2 or len(test) < 1:
        raise SystemExit(f"{args.data}: too few usable videos ({len(train)} train, {len(test)} test)")
    return {"store": store, "train": train, "test": test, "mode": mode, "skipped": skipped, "layout": layout,
            "train_strides": train_strides, "test_strides": test_strides, "test_all": test_all,
            "test_unreadable": unreadable.get("test", unreadable["train"]), "reduced_stride": sorted(reduced)}


def _backbone(args: argparse.Namespace):
    import torch

    from vsslkit.models import build_backbone
    from vsslkit.models.weights import load_backbone_weights

    torch.manual_seed(args.seed)
    in_frames = args.clip_len if args.norm == "tgn" else None
    try:
        net = build_backbone(args.backbone, width=args.width, norm=args.norm, in_frames=in_frames,
                             tgn_group_frames=args.tgn_group_frames)
    except ValueError as exc:  # e.g. a preset name with --width: the user's settings, not a bug
        from vsslkit.errors import UsageError

        raise UsageError("--backbone / --width / --norm", str(exc)) from exc
    if args.checkpoint != "random":
        try:
            report = load_backbone_weights(net, args.checkpoint)
        except (ValueError, TypeError, FileNotFoundError) as exc:
            raise SystemExit(str(exc)) from exc
        print(f"loaded {report.loaded} tensors from {args.checkpoint} [{report.source_key}]; "
              f"missing {len(report.missing)}, unexpected {len(report.unexpected)}", file=sys.stderr)
        if report.missing:
            print(f"  missing: {', '.join(report.missing[:8])}{' …' if len(report.missing) > 8 else ''}", file=sys.stderr)
    return net


def _features(args, net, data, layers, pooling) -> tuple[dict, dict]:
    from vsslkit.eval.features import extract_layer_features

    kw = {"layers": layers, "clip_len": args.clip_len, "clips_per_video": args.clips_per_video,
          "pooling": pooling, "crop_size": args.crop_size, "residual": args.residual, "batch_size": args.batch_size,
          "device": args.device}
    train = extract_layer_features(net, data["train"].paths, data["store"], num_frames=data["train"].num_frames,
                                   stride=data["train_strides"], **kw)
    if data["mode"] == "leave_one_out":
        return train, train
    test = extract_layer_features(net, data["test"].paths, data["store"], num_frames=data["test"].num_frames,
                                  stride=data["test_strides"], **kw)
    return train, test


def _protocol(args, data, task: str, **fields):
    from vsslkit.eval.results import Protocol, checkpoint_fields

    extra = {"retrieval_mode": data["mode"], "skipped_videos": len(data["skipped"]),
             "reduced_stride_videos": len(data["reduced_stride"]), "width": args.width, "norm": args.norm,
             **({"tgn_group_frames": args.tgn_group_frames} if args.norm == "tgn" else {}),
             "short_side": args.short_side, **fields.pop("extra", {})}
    return Protocol(
        task=task, dataset=f"{Path(args.data).name} ({data['layout']})", split=args.split,
        subset="all" if data["mode"] == "leave_one_out" else "test", clips_per_video=args.clips_per_video,
        crop=args.crop_size, clip_len=args.clip_len, stride=args.stride, residual=args.residual, seed=args.seed,
        backbone=args.backbone, command="vsslkit " + shlex.join(sys.argv[1:]), extra=extra,
        **checkpoint_fields(args.checkpoint), **fields,
    )


def _retrieval(data, train_feats, test_feats, ks):
    import numpy as np

    from vsslkit.eval.retrieval import recall_at_k

    loo = data["mode"] == "leave_one_out"
    return recall_at_k(test_feats, np.asarray(data["test"].labels), train_feats, np.asarray(data["train"].labels),
                       ks=ks, exclude_self=loo)


def _print_recall(label: str, recall: dict[int, float]) -> None:
    print(f"{label}: " + "  ".join(f"R@{k} {100 * v:.1f}" for k, v in recall.items()))


# ----------------------------------------------------------------------------- commands


def run_retrieve(args: argparse.Namespace) -> int:
    from vsslkit.eval.results import write_result

    ks = tuple(int(k) for k in args.ks.split(","))
    _resolve(args)
    data = _dataset(args)
    net = _backbone(args)
    train, test = _features(args, net, data, (args.layer,), args.pooling)
    res = _retrieval(data, train[args.layer], test[args.layer], ks)
    _print_recall(f"{args.layer}/{args.pooling} ({len(data['test'])} queries, {len(data['train'])} gallery)", res.recall)
    if args.out:
        metrics = {"recall": res.recall, "num_queries": len(data["test"]), "num_gallery": len(data["train"]),
                   "skipped": data["skipped"]}
        write_result(args.out, metrics, _protocol(args, data, "retrieval", layer=args.layer, pooling=args.pooling))
        print(f"wrote {args.out}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from vsslkit.eval.results import write_result
    from vsslkit.eval.svm import leave_one_out_svm, make_pairs, pair_similarity_svm

    _resolve(args)
    data = _dataset(args)
    net = _backbone(args)
    layers = tuple(layer for layer in LAYERS if layer in args.layers)
    train, test = _features(args, net, data, layers, args.pooling)
    out = args.out_dir
    for layer in layers:
        res = _retrieval(data, train[layer], test[layer], (1, 5, 10, 20, 50))
        _print_recall(f"retrieval {layer}", res.recall)
        write_result(out / f"retrieval_{layer}.json",
                     {"recall": res.recall, "num_queries": len(data["test"]), "num_gallery": len(data["train"])},
                     _protocol(args, data, "retrieval", layer=layer, pooling=args.pooling))
    labels = np.asarray(data["test"].labels)
    rng = np.random.default_rng(args.seed)
    if args.svm_videos > 0:
        pick = _balanced_subset(labels, args.svm_videos, rng)
        if len(np.unique(labels[pick])) >= 2:
            for layer in layers:
                loo = leave_one_out_svm(test[layer][pick], labels[pick], seed=args.seed)
                print(f"svm leave-one-out {layer}: {100 * loo['accuracy']:.1f}% on {len(pick)} videos")
                write_result(out / f"svm_loo_{layer}.json", {"accuracy": loo["accuracy"], "num_videos": len(pick)},
                             _protocol(args, data, "svm_loo", layer=layer, pooling=args.pooling))
        else:
            print("svm leave-one-out skipped: fewer than two classes among the test videos", file=sys.stderr)
    if args.pairs > 0:
        _, counts = np.unique(labels, return_counts=True)
        n_pairs = min(args.pairs, 2 * int((counts * (counts - 1) // 2).sum()))
        if n_pairs < args.pairs:
            print(f"pair similarity: only {n_pairs // 2} same-class pairs exist; using {n_pairs} pairs", file=sys.stderr)
        try:
            ia, ib, same = make_pairs(labels, n_pairs, rng)
            pair = pair_similarity_svm({k: test[k][ia] for k in layers}, {k: test[k][ib] for k in layers}, same,
                                       n_folds=args.folds, seed=args.seed)
        except ValueError as exc:
            print(f"pair similarity skipped: {exc}", file=sys.stderr)
        else:
            print(f"pair similarity ({12 * len(layers)} distances, {args.folds}-fold): "
                  f"{100 * pair['accuracy_mean']:.1f} ± {100 * pair['accuracy_std']:.1f}%")
            write_result(out / "pair_similarity.json", pair,
                         _protocol(args, data, "pair_similarity", layer="+".join(layers), pooling=args.pooling))
    if args.classifier is not None:
        _evaluate_classifier(args, data)
    return 0


def _statistics_pretext_eval(args: argparse.Namespace, model: Any, config: Any, store: Any) -> int:
    """Seed 003: per label, held-out accuracy vs the label's majority rate (and the block-energy probe)."""
    import json

    from vsslkit.data.datasets import open_dataset
    from vsslkit.data.flow_cache import FlowCache
    from vsslkit.eval.statistics import block_energy_probe, labelled_clips, score_labels, scores_markdown

    task = model.task.primary
    flow = FlowCache(store)

    def usable(subset: str):
        index, skipped = open_dataset(args.data, args.split, subset).with_frame_counts(store)
        built = flow.build(index.paths, progress=False)
        bad = dict(skipped + built.skipped)
        keep = [i for i, (p, n) in enumerate(zip(index.paths, index.num_frames)) if p not in bad and n >= task.min_frames]
        for path, reason in bad.items():
            print(f"skipped {path}: {reason}")
        return [index.paths[i] for i in keep], [index.num_frames[i] for i in keep]

    paths, frames = usable(args.subset)
    kw = {"crop_size": config.size, "seed": args.seed, "batch_size": args.batch_size, "residual": config.residual}
    test = labelled_clips(task, store, flow, paths, frames, clips_per_video=args.clips_per_video,
                          model=model.to(args.device), probe_features=args.probe, device=args.device, **kw)
    probe = None
    if args.probe:
        train_paths, train_frames = usable("train")
        train = labelled_clips(task, store, flow, train_paths, train_frames, clips_per_video=args.clips_per_video,
                               probe_features=True, **kw)
        probe = block_energy_probe(train, test, seed=args.seed)
    rows = score_labels(test, task, probe=probe)
    print(f"{config.task} ({task.targets}): {len(test.video)} clips from {len(paths)} {args.subset} videos (seed {args.seed})")
    print(scores_markdown(rows))
    if args.out:
        result = {"task": config.task, "targets": task.targets, "clips": len(test.video), "checkpoint": str(args.checkpoint),
                  "labels": {r.label: {"accuracy": r.accuracy, "majority": r.majority, "clips": r.clips, "classes": r.classes,
                                       **({"probe": r.probe} if r.probe is not None else {})} for r in rows}}
        write_text_atomic(args.out, json.dumps(result, indent=1))
        print(f"wrote {args.out}")
    return 0


def _balanced_subset(labels, n: int, rng):
    """Up to n indices of classes with >= 2 videos, round-robin over classes (random order within each)."""
    import numpy as np

    classes, counts = np.unique(labels, return_counts=True)
    # A class with one video can never be right under leave-one-out: leave such classes out.
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in classes[counts >= 2]]
    pick: list[int] = []
    while len(pick) < n and any(pools):
        for pool in pools:
            if pool and len(pick) < n:
                pick.append(int(pool.pop()))
    return np.sort(np.asarray(pick, dtype=np.int64))


def _evaluate_classifier(args, data) -> None:
    from vsslkit.eval.results import checkpoint_fields, write_result
    from vsslkit.eval.video_level import score_classifier_on
    from vsslkit.train.supervised import load_classifier

    if data["mode"] == "leave_one_out":
        raise SystemExit(f"{args.data}: --classifier needs a dataset with a test split (this one is folder-per-class)")
    try:
        model, config = load_classifier(args.classifier)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise SystemExit(str(exc)) from exc
    try:
        out = score_classifier_on(model, config, data["test_all"], data["store"], unreadable=data["test_unreadable"],
                                  clips_per_video=args.clips_per_video, averaging=args.averaging,
                                  batch_size=args.batch_size, device=args.device)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    print_classifier_scores(out, averaging=args.averaging)
    proto = _protocol(args, data, "video_classification", averaging=args.averaging,
                      extra={"pretrained_checkpoint": args.checkpoint, "init": config.init})
    proto.crop, proto.clip_len, proto.stride, proto.residual = config.size, config.clip_len, config.stride, config.residual
    for key, value in checkpoint_fields(args.classifier).items():  # the numbers are the classifier's
        setattr(proto, key, value)
    write_result(args.out_dir / "video_classification.json", out, proto)


def run_report(args: argparse.Namespace) -> int:
    from vsslkit.eval.results import load_results, results_to_markdown

    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    table = results_to_markdown(load_results(args.results), columns, aggregate_seeds=not args.no_aggregate)
    print(table, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out, table)
    return 0


def run_pretext_eval(args: argparse.Namespace) -> int:
    import json

    from vsslkit.commands.store_args import open_store_from_args
    from vsslkit.data.datasets import open_dataset
    from vsslkit.eval.pretext import (
        localization_summary,
        predict_pretext_clips,
        summary_markdown,
        time_symmetric_data,
    )
    from vsslkit.train.pretrain import load_pretext_model

    model, config = load_pretext_model(args.checkpoint)
    store = open_store_from_args(args, args.store, dataset_root=args.data)
    if getattr(model.task.primary, "flow_clips", ()):  # labels from pixels and flow (seed 003)
        return _statistics_pretext_eval(args, model, config, store)
    index, skipped = open_dataset(args.data, args.split, args.subset).with_frame_counts(store)
    if config.task == "ascnet":  # no classification heads: collapse, retrieval and speed-probe diagnostics
        return _ascnet_eval(args, model, config, store, index, skipped)
    need = model.task.min_frames
    skipped += [(p, f"{n} frames, the task needs at least {need}") for p, n in zip(index.paths, index.num_frames)
                if n < need]
    for path, reason in skipped:
        print(f"skipped {path}: {reason}")
    clips = predict_pretext_clips(model.to(args.device), store, index.paths, index.num_frames, crop_size=config.size,
                                  clips_per_video=args.clips_per_video, seed=args.seed, batch_size=args.batch_size)
    symmetric = time_symmetric_data(args.data)
    summary = localization_summary(clips, model.task, time_symmetric=symmetric)
    print(f"{config.task}: {len(clips)} clips from {len(index.paths) - len(skipped)} {args.subset} videos "
          f"(seed {args.seed})")
    print(summary_markdown(summary))
    if symmetric and any(s.ceiling is not None for s in summary.values()):
        print("ceiling: this is a time-symmetric synthetic set (version 2): a clip and its reversal are equally "
              "likely, so no model can beat the ceiling (see the task's `ceiling`)")
    for head, s in summary.items():
        print(f"{head} confusion (rows: true, columns: predicted; labels {', '.join(s.names)}):")
        for row in s.counts:
            print("  " + " ".join(f"{int(v):4d}" for v in row))
    if args.out:
        result = {
            "task": config.task, "clips": len(clips), "checkpoint": str(args.checkpoint),
            "command": "vsslkit pretext-eval " + shlex.join([  # rebuilt from the parsed flags: reproducible
                "--checkpoint", str(args.checkpoint), "--data", str(args.data), "--split", str(args.split),
                "--subset", args.subset, "--clips-per-video", str(args.clips_per_video), "--short-side",
                str(args.short_side), "--store", str(args.store), "--store-format", args.store_format,
                *(["--jpeg-quality", str(args.jpeg_quality)] if args.jpeg_quality else []), "--seed", str(args.seed)]),
            "skipped": [(str(p), r) for p, r in skipped],
            "time_symmetric_data": symmetric,
            "heads": {head: {"accuracy": s.accuracy, "majority": s.majority, "chance": s.chance,
                             "ceiling": s.ceiling, "labels": s.names,
                             "confusion": s.counts.tolist()} for head, s in summary.items()},
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out, json.dumps(result, indent=1))
        print(f"wrote {args.out}")
    return 0


def _ascnet_eval(args: argparse.Namespace, model, config, store, index, skipped) -> int:
    import json

    from vsslkit.eval.ascnet import ascnet_diagnostics, diagnostics_markdown
    from vsslkit.tasks import primary_task
    from vsslkit.train.pretrain import build_pretext_model

    for path, reason in skipped:
        print(f"skipped {path}: {reason}")
    scores = {}
    for name, net in (("checkpoint", model), ("random init", build_pretext_model(config))):
        scores[name] = ascnet_diagnostics(net.to(args.device), store, index.paths, index.num_frames, index.labels,
                                          index.groups, crop_size=config.size, seed=args.seed,
                                          batch_size=args.batch_size)
    d = scores["checkpoint"]
    print(f"ascnet: {d.clips} clips ({len(primary_task(model.task).speeds)} speeds) from {d.videos} {args.subset} "
          f"videos (seed {args.seed})")
    print(diagnostics_markdown(d, scores["random init"]))
    if args.out:
        result = {"task": "ascnet", "checkpoint": str(args.checkpoint), "subset": args.subset, "seed": args.seed,
                  "skipped": [(str(p), r) for p, r in skipped],
                  **{k.replace(" ", "_"): v.as_dict() for k, v in scores.items()}}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out, json.dumps(result, indent=1))
        print(f"wrote {args.out}")
    return 0


def run_pretext_probe(args: argparse.Namespace) -> int:
    from vsslkit.commands.store_args import open_store_from_args
    from vsslkit.data.datasets import open_dataset
    from vsslkit.eval.probe import motion_energy_probe

    store = open_store_from_args(args, args.store, dataset_root=args.data)
    train, bad_train = open_dataset(args.data, args.split, "train").with_frame_counts(store)
    test, bad_test = open_dataset(args.data, args.split, "test").with_frame_counts(store)
    try:
        result = motion_energy_probe(args.task, train=(train.paths, train.num_frames),
                                     test=(test.paths, test.num_frames), source=store, clip_len=args.clip_len,
                                     crop_size=args.size, train_clips_per_video=args.train_clips_per_video,
                                     test_clips_per_video=args.test_clips_per_video, seed=args.seed,
                                     **task_options(args))
    except ValueError as exc:  # an unknown task or options it does not take
        print(f"error: --task {args.task}: {exc}", file=sys.stderr)
        return 2
    for path, reason in [*bad_train, *bad_test, *result["skipped"]]:
        print(f"skipped {path}: {reason}")
    print(f"motion-energy probe, {args.task}: fitted on {result['train_clips']} clips of the training videos, "
          f"scored on {result['test_clips']} clips of the test videos")
    print("| head | accuracy | majority label | chance |\n|---|---|---|---|")
    for head, r in result["heads"].items():
        print(f"| {head} | {100 * r['accuracy']:.1f} % | {100 * r['majority']:.1f} % | {100 * r['chance']:.1f} % |")
    return 0
