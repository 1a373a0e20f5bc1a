"""`vsslkit embed | neighbours`: features of your own videos, and each video's nearest neighbours.

Thin wrappers over `vsslkit.eval.embed` (the retrieval protocol on plain files and folders) and
`vsslkit.viz.neighbours` (film strips). A user's mistake (a missing path, a folder without
videos, a checkpoint of another backbone, a file that is not an embedding) is one line on stderr
and exit code 2. A query that is not in the features file is embedded with the file's stored
protocol and checkpoint (refused, by name, if that checkpoint is gone or changed).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from vsslkit.commands.arguments import int_at_least
from vsslkit.data.store import default_store_dir
from vsslkit.eval.pooling import POOLING_HELP, POOLINGS

DEFAULT_STORE = default_store_dir()


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the top-level `embed` and `neighbours` commands."""
    from vsslkit.commands.evaluate import EVAL_DEFAULTS

    d = EVAL_DEFAULTS
    p = subparsers.add_parser(
        "embed", help="one feature vector per video of any files/folders (retrieval protocol) -> .npz",
        description="Embed your own videos: N uniformly spaced centre-cropped clips per video, a backbone layer "
        "pooled and averaged (the retrieval protocol of `vsslkit retrieve`). Folders are searched recursively. "
        "Unreadable or too-short videos are listed as skipped (printed and stored in the file). The .npz holds "
        "the features, the video paths, the checkpoint's sha256 and the protocol. Backbone, width, norm, clip "
        "length, crop size and residual input default to the checkpoint's own settings.")
    p.add_argument("videos", nargs="+", metavar="VIDEO_OR_DIR", help="video files and/or folders of videos")
    p.add_argument("--checkpoint", required=True, help="a vsslkit checkpoint (pretraining or classifier), or 'random'")
    p.add_argument("--out", type=Path, required=True, help="features file to write (.npz)")
    p.add_argument("--clips", type=int, default=10, help="uniformly spaced clips per video (default 10)")
    p.add_argument("--layer", default="pool5", help="backbone layer to pool (pool3 | pool4 | pool5; default pool5)")
    p.add_argument("--pooling", choices=POOLINGS, default="avg", help=POOLING_HELP)
    p.add_argument("--backbone", default=None, help=f"default: the checkpoint's, else {d['backbone']}")
    p.add_argument("--width", type=float, default=None, help=f"default: the checkpoint's, else {d['width']}")
    p.add_argument("--norm", choices=("bn", "tgn"), default=None, help="default: the checkpoint's, else bn")
    p.add_argument("--tgn-group-frames", type=int_at_least(1), default=None, metavar="G",
                   help=f"--norm tgn: frames per temporal group (default: the checkpoint's, else {d['tgn_group_frames']})")
    p.add_argument("--clip-len", type=int, default=None, help=f"default: the checkpoint's, else {d['clip_len']}")
    p.add_argument("--stride", type=int, default=None,
                   help="clip stride (default: the classifier's, else 1); short videos get the largest that fits")
    p.add_argument("--crop-size", type=int, default=None, help=f"default: the checkpoint's size, else {d['size']}")
    p.add_argument("--residual", action=argparse.BooleanOptionalAction, default=None,
                   help="feed frame differences (default: as the checkpoint was trained)")
    p.add_argument("--short-side", type=int, default=128, help="short side of stored frames (default 128)")
    p.add_argument("--batch-size", type=int, default=8, help="clips per forward pass")
    p.add_argument("--seed", type=int, default=0, help="seeds the random init of 'random' (same seed, same features)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--store", type=Path, default=DEFAULT_STORE, help=f"frame store folder (default {DEFAULT_STORE})")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=run_embed)

    n = subparsers.add_parser(
        "neighbours", help="nearest videos of each query in a features file (cosine on standardised features)",
        description="Nearest videos per query by cosine similarity of features standardised with all embedded "
        "videos (the retrieval protocol). A query is a video path in the features file, or any other video: "
        "that one is embedded with the file's stored protocol and checkpoint first.")
    n.add_argument("queries", nargs="+", metavar="QUERY", help="video paths (in the features file or new)")
    n.add_argument("--features", type=Path, required=True, help="a file written by `vsslkit embed`")
    n.add_argument("--k", type=int, default=10, help="neighbours per query (default 10)")
    n.add_argument("--exclude-self", action="store_true", help="leave a query out of its own neighbours")
    n.add_argument("--html", type=Path, help="also write a page with film strips of each query and its neighbours")
    n.add_argument("--strip-frames", type=int, default=8, help="frames per film strip in --html (default 8)")
    n.add_argument("--device", default="auto", help="auto | cpu | cuda (only to embed new query videos)")
    n.add_argument("--store", type=Path, default=DEFAULT_STORE, help=f"frame store folder (default {DEFAULT_STORE})")
    n.set_defaults(func=run_neighbours)


def _fail(command: str, message: str) -> int:
    """One line on stderr (a library message may span lines, e.g. torch.load's), exit code 2."""
    print(f"vsslkit {command}: " + " ".join(message.split()), file=sys.stderr)
    return 2


def _settings(args: argparse.Namespace):
    """EmbedSettings from flags, else the checkpoint's stored config, else the eval defaults."""
    from vsslkit.commands.evaluate import EVAL_DEFAULTS
    from vsslkit.commands.train import checkpoint_settings, resolve_settings
    from vsslkit.eval.embed import EmbedError, EmbedSettings

    sources = []
    if args.checkpoint != "random":
        try:
            sources.append((args.checkpoint, checkpoint_settings(args.checkpoint)))
        except (ValueError, TypeError, FileNotFoundError) as exc:
            raise EmbedError(str(exc)) from exc
    try:
        taken = resolve_settings(args, defaults={**EVAL_DEFAULTS}, sources=sources, flags={"size": "crop_size"})
    except SystemExit as exc:  # resolve_settings' one-line message for a contradicting flag
        raise EmbedError(str(exc)) from exc
    if taken:
        print(f"from the checkpoint: {', '.join(taken)}", file=sys.stderr)
    return EmbedSettings(backbone=args.backbone, width=args.width, norm=args.norm,
                         tgn_group_frames=args.tgn_group_frames, clip_len=args.clip_len,
                         crop_size=args.crop_size, residual=args.residual, stride=args.stride,
                         clips_per_video=args.clips, layer=args.layer, pooling=args.pooling,
                         short_side=args.short_side)


def _device(value: str):
    from vsslkit.eval.embed import EmbedError
    from vsslkit.train.distributed import resolve_device

    try:
        return resolve_device(value)
    except RuntimeError as exc:
        raise EmbedError(str(exc)) from exc
    except Exception as exc:
        raise EmbedError(f"--device {value}: {exc}") from exc


def _print_skipped(skipped) -> None:
    for path, reason in skipped:
        print(f"skipped {path}: {reason}")


def run_embed(args: argparse.Namespace) -> int:
    from vsslkit.data.store import FrameStore
    from vsslkit.eval.embed import (
        EmbedError,
        build_embedding_backbone,
        collect_videos,
        embed_videos,
        save_embedding,
    )

    try:
        if args.clips < 1 or args.batch_size < 1 or args.short_side < 1:
            raise EmbedError(f"--clips, --batch-size and --short-side must be >= 1, got {args.clips}, "
                             f"{args.batch_size}, {args.short_side}")
        paths = collect_videos(args.videos)
        settings = _settings(args)
        device = _device(args.device)
        net, report = build_embedding_backbone(settings, args.checkpoint, seed=args.seed)
        protocol = settings.protocol(checkpoint=args.checkpoint, seed=args.seed,
                                     dataset=", ".join(str(v) for v in args.videos),
                                     command="vsslkit " + shlex.join(sys.argv[1:]))
        if report is not None:
            print(f"loaded {report.loaded} tensors from {args.checkpoint} [{report.source_key}]; missing "
                  f"{len(report.missing)}, unexpected {len(report.unexpected)}", file=sys.stderr)
        store = FrameStore(args.store, short_side=settings.short_side)
        embedding = embed_videos(paths, net, store, settings, protocol=protocol, batch_size=args.batch_size,
                                 device=device, progress=args.progress)
        _print_skipped(embedding.skipped)
        if not len(embedding):
            raise EmbedError(f"none of the {len(paths)} videos could be embedded (see the skipped lines above)")
        save_embedding(args.out, embedding)
    except EmbedError as exc:
        return _fail("embed", str(exc))
    except OSError as exc:
        return _fail("embed", f"{getattr(exc, 'filename', None) or args.out}: {exc.strerror or exc}")
    print(f"embedded {len(embedding)} of {len(paths)} videos ({settings.layer}/{settings.pooling}, "
          f"{embedding.features.shape[1]} dims, {settings.clips_per_video} clips each, on {device.type}); "
          f"{len(embedding.skipped)} skipped; wrote {args.out}")
    return 0


def run_neighbours(args: argparse.Namespace) -> int:
    from vsslkit.eval.embed import (
        EmbedError,
        EmbedSettings,
        backbone_from_protocol,
        embed_videos,
        load_embedding,
        neighbours_of,
        neighbours_table,
        store_for,
    )

    try:
        if args.k < 1:
            raise EmbedError(f"--k must be >= 1, got {args.k}")
        embedding = load_embedding(args.features)
        if not len(embedding):
            raise EmbedError(f"{args.features}: holds no videos")
        new = [q for q in args.queries if embedding.index_of(q) is None]
        for q in new:
            if not Path(q).is_file():
                raise EmbedError(f"{q}: not in {args.features} and not a video file")
        settings = EmbedSettings.from_protocol(embedding.protocol)
        store = store_for(embedding, args.store)
        new_features = None
        if new:
            print(f"embedding {len(new)} new query video(s) with the protocol of {args.features}", file=sys.stderr)
            net = backbone_from_protocol(embedding.protocol)
            extra = embed_videos(new, net, store, settings, protocol=embedding.protocol,
                                 device=_device(args.device), progress=False)
            if extra.skipped:
                path, reason = extra.skipped[0]
                raise EmbedError(f"{path}: cannot be embedded ({reason})")
            new_features = extra.features
        results = neighbours_of(embedding, args.queries, k=args.k, exclude_self=args.exclude_self,
                                new_features=new_features)
        print(neighbours_table(embedding, results), end="")
        if args.html:
            from vsslkit.viz.neighbours import neighbours_html, write_html

            write_html(args.html, neighbours_html(embedding, results, store, count=args.strip_frames))
            print(f"wrote {args.html}")
    except EmbedError as exc:
        return _fail("neighbours", str(exc))
    except OSError as exc:
        return _fail("neighbours", f"{getattr(exc, 'filename', None) or args.html}: {exc.strerror or exc}")
    return 0
