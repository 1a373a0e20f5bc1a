"""`vsslkit data synthetic | check | prepare`: build, verify and prepare datasets.

Heavy imports happen inside the command functions so `vsslkit --help` stays fast. The
`add_*_arguments` / `run_*` pairs are shared with the thin scripts in `data_scripts/`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from vsslkit.commands.arguments import int_at_least
from vsslkit.commands.store_args import add_store_format_arguments

SYNTHETIC_VERSIONS, SYNTHETIC_DEFAULT_VERSION = (2, 3), 3


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `synthetic`, `check` and `prepare` under `vsslkit data`."""
    s = subparsers.add_parser(
        "synthetic", help="write the built-in synthetic dataset (14 motion classes, UCF101 layout)",
        description="Render the synthetic dataset: 14 classes that only motion tells apart, real H.264 files in "
        "the UCF101 layout with 3 group-based splits. Idempotent: an identical existing set is kept.",
    )
    add_synthetic_arguments(s)
    s.set_defaults(func=run_synthetic)

    c = subparsers.add_parser(
        "check", help="check a dataset: layout, splits, and that every video decodes and is long enough",
        description="Detect the layout, load every official split, probe every video (a full decode, so frame "
        "counts are exact) and write a JSON + text report of unusable videos and split problems. "
        "Exit status 1 when anything is unusable.",
    )
    add_check_arguments(c)
    c.set_defaults(func=run_check)

    p = subparsers.add_parser(
        "prepare", help="UCF101 / HMDB51 from the downloaded archives: verify, extract, build the frame store",
        description="Verify checksums (the computed MD5 is always printed), extract the official archives "
        "(rar needs the 'rarfile' package and one of unrar, unar, 7z, bsdtar) and build the frame store.",
    )
    add_prepare_arguments(p)
    p.set_defaults(func=run_prepare)


# ----------------------------------------------------------------------------- synthetic


def add_synthetic_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.add_argument("--videos-per-class", type=int_at_least(1), default=43, help="videos per class (default 43: ~600 videos)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=64, help="frame side in pixels (default 64)")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--min-length", type=int, default=50, help="shortest video in frames (default 50 = 2 s)")
    p.add_argument("--max-length", type=int, default=200, help="longest video in frames (default 200 = 8 s)")
    p.add_argument("--workers", type=int_at_least(1), default=2, help="processes rendering in parallel (default 2)")
    p.add_argument("--camera", choices=("smooth", "white"), default="smooth",
                   help="camera shake: smooth hand-held drift (default) or 'white' per-frame ±1 px jitter, which "
                   "hides speed changes (for comparison; see docs/results/pretext.md)")
    # synthetic.VERSIONS / GENERATOR_VERSION, spelled out so `--help` does not import OpenCV (a test checks they match)
    p.add_argument("--version", dest="generator_version", type=int, choices=SYNTHETIC_VERSIONS,
                   default=SYNTHETIC_DEFAULT_VERSION,
                   help=f"generator version (default {SYNTHETIC_DEFAULT_VERSION}): 2 is time-symmetric (no observer can tell a "
                   "clip's direction), 3 adds irreversible physics (falling debris, spreading ink, ripples) so the "
                   "arrow of time is visible; the class is decided by the main object's motion in both")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_synthetic(args: argparse.Namespace) -> int:
    from vsslkit.data.datasets import open_dataset
    from vsslkit.data.synthetic import TEST_GROUPS, load_metadata, make_synthetic

    meta_path = args.out / "synthetic.json"
    before = meta_path.stat().st_mtime_ns if meta_path.is_file() else None
    started = time.perf_counter()
    try:
        out = make_synthetic(args.out, videos_per_class=args.videos_per_class, seed=args.seed, size=args.size,
                             fps=args.fps, length_range=(args.min_length, args.max_length),
                             workers=args.workers, progress=not args.no_progress, camera=args.camera,
                             version=args.generator_version)
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    meta = load_metadata(out)
    frames = [v["num_frames"] for v in meta["videos"]]
    first = open_dataset(out, split=1, subset="train")
    print(f"synthetic dataset at {out}")
    print(f"  {len(first.class_names)} classes: {', '.join(first.class_names)}")
    print(f"  {len(frames)} videos, {sum(frames)} frames ({min(frames)}-{max(frames)} per video), "
          f"{args.size}x{args.size} at {args.fps} fps, generator version {meta['request']['generator_version']}")
    for split in sorted(TEST_GROUPS):
        train = open_dataset(out, split=split, subset="train")
        test = open_dataset(out, split=split, subset="test")
        print(f"  split {split}: {len(train)} train / {len(test)} test videos (test groups {TEST_GROUPS[split]})")
    unchanged = before is not None and before == meta_path.stat().st_mtime_ns
    print(f"  took {seconds:.1f} s" + (" (already there with these parameters: nothing to do)" if unchanged else ""))
    return 0


# ----------------------------------------------------------------------------- check


def add_check_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", type=Path, help="dataset folder (UCF101, HMDB51, train/test folders or one per class)")
    p.add_argument("--min-frames", type=int, default=17,
                   help="videos with fewer decodable frames are reported as too short (default 17)")
    p.add_argument("--report-dir", type=Path, help="where check_report.json/.txt go (default: the dataset folder)")
    p.add_argument("--workers", type=int_at_least(1), default=1, help="processes probing videos in parallel")
    p.add_argument("--no-progress", action="store_true")


def _probe_one(path: str) -> tuple[str, int | None, str | None, str | None]:
    """(path, frames, error, warning) for one video; never raises for a bad video."""
    from vsslkit.data.video import VideoError, probe

    try:
        info = probe(path)
    except VideoError as exc:
        return path, None, str(getattr(exc, "reason", exc)), None
    except Exception as exc:  # noqa: BLE001 -- a bug in one file must not end a 13k-video check
        return path, None, f"{type(exc).__name__}: {exc}", None
    warnings = [w for w in (info.decode_error, info.short_warning) if w]
    return path, info.num_frames, None, "; ".join(warnings) or None


def check_dataset(root: Path, *, min_frames: int = 17, workers: int = 1, progress: bool = True) -> dict[str, Any]:
    """The check report as a dict (layout, per-split counts, problems, unusable videos)."""
    from tqdm.auto import tqdm

    from vsslkit.data.datasets import DatasetError, detect_layout, open_dataset

    root = root.expanduser().resolve()
    layout = detect_layout(root)
    report: dict[str, Any] = {"dataset": str(root), "layout": layout, "min_frames": min_frames, "splits": {},
                              "split_problems": [], "unreadable": [], "too_short": [], "warnings": []}
    videos: dict[str, None] = {}
    class_names: list[str] = []
    splits = (1, 2, 3) if layout in ("ucf101", "hmdb51") else (1,)
    subsets = ("train", "test") if layout != "folder" else ("all",)
    for split in splits:
        loaded = {}
        for subset in subsets:
            try:
                index = open_dataset(root, split=split, subset=subset)
            except DatasetError as exc:
                report["split_problems"].append(f"split {split} {subset}: {exc}")
                continue
            loaded[subset] = index
            class_names = class_names or index.class_names
            videos.update(dict.fromkeys(str(p) for p in index.paths))
            report["split_problems"] += [f"split {split} {subset}: {p}" for p in index.problems]
        report["splits"][str(split)] = {s: len(ix) for s, ix in loaded.items()}
        if "train" in loaded and "test" in loaded:
            train, test = loaded["train"], loaded["test"]
            both = set(train.paths) & set(test.paths)
            report["split_problems"] += [f"split {split}: {p} is in both train and test" for p in sorted(both)]
            if layout == "ucf101":
                shared = sorted(set(train.groups) & set(test.groups))
                report["split_problems"] += [f"split {split}: group {g} straddles train and test" for g in shared]
    report["classes"] = class_names
    report["num_videos"] = len(videos)
    paths = list(videos)
    results = []
    with tqdm(total=len(paths), desc="probing videos", unit="video", disable=not progress) as bar:
        if workers <= 1:
            for path in paths:
                results.append(_probe_one(path))
                bar.update()
        else:
            from vsslkit.data.workers import die_with_parent

            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                     initializer=die_with_parent) as pool:
                for result in pool.map(_probe_one, paths, chunksize=8):
                    results.append(result)
                    bar.update()
    frames_total = 0
    for path, frames, error, warning in results:
        if error is not None:
            report["unreadable"].append({"path": path, "reason": error})
        elif frames < min_frames:
            report["too_short"].append({"path": path, "frames": frames})
        else:
            frames_total += frames
        if warning:
            report["warnings"].append({"path": path, "warning": warning})
    report["usable_videos"] = len(paths) - len(report["unreadable"]) - len(report["too_short"])
    report["usable_frames"] = frames_total
    report["ok"] = not (report["unreadable"] or report["too_short"] or report["split_problems"])
    return report


def format_check_report(report: dict[str, Any]) -> str:
    lines = [
        (f"dataset {report['dataset']} ({report['layout']} layout): {len(report['classes'])} classes, "
        f"{report['num_videos']} videos, {report['usable_videos']} usable ({report['usable_frames']} frames)"),
    ]
    for split, counts in report["splits"].items():
        lines.append(f"  split {split}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    sections: list[tuple[str, list[str]]] = [
        ("unreadable videos", [f"{u['path']}: {u['reason']}" for u in report["unreadable"]]),
        (f"too short (< {report['min_frames']} frames)", [f"{u['path']}: {u['frames']} frames" for u in report["too_short"]]),
        ("split problems", list(report["split_problems"])),
        ("decoded with warnings (usable)", [f"{w['path']}: {w['warning']}" for w in report["warnings"]]),
    ]
    for title, items in sections:
        if items:
            lines.append(f"{len(items)} {title}:")
            lines += [f"  {item}" for item in items]
    lines.append("OK: every video is usable" if report["ok"] else "NOT OK: see the problems above")
    return "\n".join(lines)


def run_check(args: argparse.Namespace) -> int:
    from vsslkit.atomic import write_text_atomic
    from vsslkit.data.datasets import DatasetError
    from vsslkit.errors import DiskFullError

    try:
        report = check_dataset(args.dataset, min_frames=args.min_frames, workers=args.workers,
                               progress=not args.no_progress)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    text = format_check_report(report)
    print(text)
    out_dir = args.report_dir or Path(report["dataset"])
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out_dir / "check_report.json", json.dumps(report, indent=1))
        write_text_atomic(out_dir / "check_report.txt", text + "\n")
    except (OSError, DiskFullError) as exc:
        print(f"error: cannot write the report to {out_dir}: {exc} (use --report-dir)", file=sys.stderr)
        return 1
    print(f"report written to {out_dir / 'check_report.json'} and check_report.txt")
    return 0 if report["ok"] else 1


# ----------------------------------------------------------------------------- prepare


def add_prepare_arguments(p: argparse.ArgumentParser, dataset: str | None = None) -> None:
    if dataset is None:
        p.add_argument("dataset", choices=("ucf101", "hmdb51"))
    names = {"ucf101": ("UCF101.rar", "UCF101TrainTestSplits-RecognitionTask.zip"),
             "hmdb51": ("hmdb51_org.rar", "test_train_splits.rar")}
    videos, splits = names[dataset] if dataset else ("UCF101.rar | hmdb51_org.rar",
                                                     "UCF101TrainTestSplits-RecognitionTask.zip | test_train_splits.rar")
    p.add_argument("--out", type=Path, required=True, help="dataset folder to create")
    p.add_argument("--videos", required=True, help=f"video archive ({videos}): a path, or an http(s) URL to download")
    p.add_argument("--splits", required=True, help=f"split archive ({splits}): a path or URL")
    for role in ("videos", "splits"):
        p.add_argument(f"--{role}-md5", help=f"expected MD5 of the {role} archive (verified; always printed)")
        p.add_argument(f"--{role}-sha256", help=f"expected SHA-256 of the {role} archive")
    p.add_argument("--store", type=Path, help="frame store folder (default $VSSLKIT_STORE or ~/.cache/vsslkit/frames)")
    p.add_argument("--no-store", action="store_true", help="only extract; do not build the frame store")
    p.add_argument("--short-side", type=int_at_least(8), default=128, help="stored frames' short side (default 128)")
    p.add_argument("--workers", type=int_at_least(1), default=1, help="processes building the frame store")
    add_store_format_arguments(p, default="jpeg")
    p.add_argument("--no-progress", action="store_true")


def run_prepare(args: argparse.Namespace, dataset: str | None = None) -> int:
    from vsslkit.data.datasets import DatasetError
    from vsslkit.data.jpeg_store import DEFAULT_QUALITY
    from vsslkit.data.prepare import PrepareError, prepare_hmdb51, prepare_ucf101

    name = dataset or args.dataset
    prepare: Callable[..., Any] = {"ucf101": prepare_ucf101, "hmdb51": prepare_hmdb51}[name]
    try:
        prepare(args.out, videos=args.videos, splits=args.splits, videos_md5=args.videos_md5,
                splits_md5=args.splits_md5, videos_sha256=args.videos_sha256, splits_sha256=args.splits_sha256,
                store_dir=args.store, build_store=not args.no_store, short_side=args.short_side,
                store_format=args.store_format, jpeg_quality=args.jpeg_quality or DEFAULT_QUALITY, workers=args.workers, progress=not args.no_progress)
    except (PrepareError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
