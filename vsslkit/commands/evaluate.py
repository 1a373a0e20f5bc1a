"""`vsslkit retrieve | evaluate | report`: downstream protocols, each result saved with its protocol.

Heavy imports (torch, the models) happen inside the command functions so `vsslkit --help` stays fast.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from vsslkit.data.store import default_store_dir

DEFAULT_STORE = default_store_dir()
LAYERS = ("pool3", "pool4", "pool5")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the top-level `retrieve`, `evaluate` and `report` commands."""
    p = subparsers.add_parser(
        "retrieve", help="nearest-neighbour video retrieval R@k (test queries the train split)",
        description="Video retrieval, seed-000 protocol: 10 centre-cropped clips per video, layer features "
        "pooled and averaged, standardised with train-split statistics, cosine similarity, R@1/5/10/20/50. "
        "A folder-per-class dataset (no test split) is evaluated leave-one-out.",
    )
    _add_common(p)
    p.add_argument("--layer", default="pool5", help="backbone layer to pool (default: pool5)")
    p.add_argument("--pooling", choices=("avg", "max"), default="avg", help="global 3D average or max pooling")
    p.add_argument("--ks", default="1,5,10,20,50", help="comma-separated k values")
    p.add_argument("--out", type=Path, help="write the result JSON here")
    p.set_defaults(func=run_retrieve)

    e = subparsers.add_parser(
        "evaluate", help="all frozen-feature protocols (+ a fine-tuned classifier) for one checkpoint",
        description="Retrieval at pool3/pool4/pool5, leave-one-out linear SVM on a class-balanced subset of the "
        "test videos (seed 003 §6.3), pair same/not-same linear SVM on 12 distances per layer with 10-fold CV "
        "(seed 003 §6.4), and video-level accuracy of --classifier when given (fine-tune with `vsslkit finetune`).",
    )
    _add_common(e)
    e.add_argument("--pooling", choices=("avg", "max"), default="avg")
    e.add_argument("--svm-videos", type=int, default=60, help="test videos for the leave-one-out SVM (0: skip)")
    e.add_argument("--pairs", type=int, default=200, help="pairs for the pair-similarity SVM (0: skip)")
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


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="dataset root (UCF101, HMDB51 or folders)")
    p.add_argument("--split", type=int, default=1, help="official split (default 1)")
    p.add_argument("--checkpoint", required=True, help="pretrained checkpoint, or 'random' for random init")
    p.add_argument("--backbone", default="tiny_r3d", help="backbone name (default tiny_r3d)")
    p.add_argument("--width", type=float, default=1.0, help="channel width multiplier")
    p.add_argument("--norm", choices=("bn", "tgn"), default="bn")
    p.add_argument("--clip-len", type=int, default=16)
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--clips-per-video", type=int, default=10)
    p.add_argument("--crop-size", type=int, default=112)
    p.add_argument("--residual", action="store_true", help="feed frame differences (as the backbone was trained)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0, help="seeds random init, pair sampling and SVMs")
    p.add_argument("--store", type=Path, default=DEFAULT_STORE, help=f"frame store folder (default {DEFAULT_STORE})")


# ----------------------------------------------------------------------------- shared steps


def _dataset(args: argparse.Namespace) -> dict[str, Any]:
    """Gallery (train) and query (test) indexes with frame counts; unusable videos listed, never hidden."""
    from vsslkit.data.datasets import detect_layout, open_dataset
    from vsslkit.data.store import FrameStore

    store = FrameStore(args.store)
    layout = detect_layout(args.data)
    if layout == "folder":  # no official test split: every video queries all the others
        train = open_dataset(args.data, args.split, "train")
        test, mode = None, "leave_one_out"
    else:
        train = open_dataset(args.data, args.split, "train")
        test, mode = open_dataset(args.data, args.split, "test"), "test_to_train"
    span = (args.clip_len + (1 if args.residual else 0) - 1) * args.stride + 1
    skipped: list[tuple[str, str]] = []

    def usable(index):
        index, bad = index.with_frame_counts(store)
        skipped.extend((str(p), r) for p, r in bad)
        keep = [i for i, n in enumerate(index.num_frames) if n >= span]
        skipped.extend((str(index.paths[i]), f"{index.num_frames[i]} frames < test clip span {span}")
                       for i in range(len(index)) if i not in set(keep))
        return index.subset(keep)

    train = usable(train)
    test = usable(test) if test is not None else train
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if len(train) < 2 or len(test) < 1:
        raise SystemExit(f"{args.data}: too few usable videos ({len(train)} train, {len(test)} test)")
    return {"store": store, "train": train, "test": test, "mode": mode, "skipped": skipped, "layout": layout}


def _backbone(args: argparse.Namespace):
    import torch

    from vsslkit.eval.features import load_backbone_weights
    from vsslkit.models import build_backbone

    torch.manual_seed(args.seed)
    in_frames = args.clip_len if args.norm == "tgn" else None
    net = build_backbone(args.backbone, width=args.width, norm=args.norm, in_frames=in_frames)
    if args.checkpoint != "random":
        report = load_backbone_weights(net, args.checkpoint)
        print(f"loaded {report.loaded} tensors from {args.checkpoint} [{report.source_key}]; "
              f"missing {len(report.missing)}, unexpected {len(report.unexpected)}", file=sys.stderr)
        if report.missing:
            print(f"  missing: {', '.join(report.missing[:8])}{' …' if len(report.missing) > 8 else ''}", file=sys.stderr)
    return net


def _features(args, net, data, layers, pooling) -> tuple[dict, dict]:
    from vsslkit.eval.features import extract_layer_features

    kw = {"layers": layers, "clip_len": args.clip_len, "stride": args.stride, "clips_per_video": args.clips_per_video,
              "pooling": pooling, "crop_size": args.crop_size, "residual": args.residual, "batch_size": args.batch_size,
              "device": args.device}
    train = extract_layer_features(net, data["train"].paths, data["store"], num_frames=data["train"].num_frames, **kw)
    if data["mode"] == "leave_one_out":
        return train, train
    test = extract_layer_features(net, data["test"].paths, data["store"], num_frames=data["test"].num_frames, **kw)
    return train, test


def _protocol(args, data, task: str, **fields):
    from vsslkit.eval.results import Protocol, checkpoint_fields

    extra = {"retrieval_mode": data["mode"], "skipped_videos": len(data["skipped"]), "width": args.width,
             "norm": args.norm, **fields.pop("extra", {})}
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

    data = _dataset(args)
    net = _backbone(args)
    train, test = _features(args, net, data, LAYERS, args.pooling)
    out = args.out_dir
    for layer in LAYERS:
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
            for layer in LAYERS:
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
            pair = pair_similarity_svm({k: test[k][ia] for k in LAYERS}, {k: test[k][ib] for k in LAYERS}, same,
                                       n_folds=args.folds, seed=args.seed)
        except ValueError as exc:
            print(f"pair similarity skipped: {exc}", file=sys.stderr)
        else:
            print(f"pair similarity (36 distances, {args.folds}-fold): "
                  f"{100 * pair['accuracy_mean']:.1f} ± {100 * pair['accuracy_std']:.1f}%")
            write_result(out / "pair_similarity.json", pair,
                         _protocol(args, data, "pair_similarity", layer="+".join(LAYERS), pooling=args.pooling))
    if args.classifier is not None:
        _evaluate_classifier(args, data)
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
    import torch

    from vsslkit.eval.results import checkpoint_fields, write_result
    from vsslkit.eval.video_level import evaluate_classifier
    from vsslkit.models import build_backbone
    from vsslkit.tasks.model import PretextModel
    from vsslkit.tasks.supervised import SupervisedTask

    test = data["test"]
    backbone = build_backbone(args.backbone, width=args.width, norm=args.norm,
                              in_frames=args.clip_len if args.norm == "tgn" else None)
    task = SupervisedTask(num_classes=test.num_classes, clip_len=args.clip_len, stride=args.stride,
                          extra_frames=1 if args.residual else 0)
    model = PretextModel(backbone, task)
    raw = torch.load(args.classifier, map_location="cpu", weights_only=True)
    state = raw.get("model", raw) if isinstance(raw, dict) else raw
    state = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if k.startswith(("backbone.", "heads."))]
    if missing:
        raise SystemExit(f"{args.classifier}: classifier checkpoint lacks {len(missing)} tensors, e.g. {missing[:3]}")
    out = evaluate_classifier(model, test.paths, test.labels, data["store"], num_frames=test.num_frames,
                              clip_len=args.clip_len, stride=args.stride, clips_per_video=args.clips_per_video,
                              averaging=args.averaging, crop_size=args.crop_size, residual=args.residual,
                              batch_size=args.batch_size, device=args.device, class_names=test.class_names)
    print(f"classifier: video acc {100 * out['video_accuracy']:.1f}% ({args.averaging} averaging), "
          f"clip acc {100 * out['clip_accuracy']:.1f}%, Hit@5 {100 * out['hit_at_5']:.1f}%")
    proto = _protocol(args, data, "video_classification", averaging=args.averaging,
                      extra={"pretrained_checkpoint": args.checkpoint})
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
        args.out.write_text(table)
    return 0
