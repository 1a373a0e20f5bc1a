"""`--store-format` / `--jpeg-quality` for every command that builds a frame store.

`auto` (train and evaluate) reads the format `vsslkit data prepare` recorded in the dataset
folder, so a dataset prepared as JPEG is never silently re-stored as ~10x larger raw frames.
"""

from __future__ import annotations

import argparse
import os


def add_store_format_arguments(p: argparse.ArgumentParser, *, default: str) -> None:
    choices = ("raw", "jpeg", "auto") if default == "auto" else ("raw", "jpeg")
    what = ("auto: what `data prepare` recorded in the dataset folder, else raw" if default == "auto"
            else f"default {default}")
    p.add_argument("--store-format", choices=choices, default=default,
                   help=f"frame store format: raw uint8 (exact, fastest) or jpeg (~10x smaller) ({what})")
    p.add_argument("--jpeg-quality", type=_quality, default=None,
                   help="JPEG quality 1-100 of a jpeg store (default 90, or the one recorded by data prepare)")


def _quality(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"JPEG quality must be an integer in 1..100, got {text!r}")
    return value


def resolve_store_format(args: argparse.Namespace, dataset_root: str | os.PathLike | None = None) -> tuple[str, int]:
    """(format, quality) from the flags, reading the dataset's marker for `auto`."""
    from vsslkit.data.jpeg_store import DEFAULT_QUALITY
    from vsslkit.data.stores import recorded_format

    fmt, quality = args.store_format, args.jpeg_quality
    if fmt == "auto":
        recorded = recorded_format(dataset_root) if dataset_root is not None else {}
        fmt, quality = recorded.get("format", "raw"), quality or recorded.get("quality")
    return fmt, int(quality or DEFAULT_QUALITY)


def open_store_from_args(args: argparse.Namespace, root: str | os.PathLike, dataset_root=None):
    """The store the flags ask for under `root`."""
    from vsslkit.data.stores import open_store

    fmt, quality = resolve_store_format(args, dataset_root)
    return open_store(root, format=fmt, short_side=args.short_side, quality=quality)
