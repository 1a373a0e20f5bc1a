"""`vsslkit data probe`: what the kit sees in video files, before anything is trained on them.

One line per file (frames counted by decoding, fps, display size, rotation, duration, codec)
or `ERROR <reason>`; exit code 1 when any file is unusable, so scripts can stop early.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "probe",
        help="probe video files: decodable frames, fps, size, rotation, duration, codec",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="video files, or folders (searched recursively for video extensions)")
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of text lines")
    parser.set_defaults(func=run_probe)


def run_probe(args: argparse.Namespace) -> int:
    from vsslkit.data.video import VideoError, probe

    results: list[dict] = []
    for path in expand_paths(args.paths):
        try:
            info = probe(path)
            results.append({"ok": True, **asdict(info), "warning": info.short_warning})
        except VideoError as exc:
            results.append({"ok": False, "path": str(path), "error": exc.reason})
        if not args.json:
            print(format_line(results[-1]), flush=True)
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        print()
    if not results:
        print("no video files found in " + " ".join(map(str, args.paths)), file=sys.stderr)
        return 1
    return 0 if all(r["ok"] for r in results) else 1


def format_line(result: dict) -> str:
    """One human-readable line for a probe result (see `run_probe`)."""
    if not result["ok"]:
        return f"{result['path']}  ERROR {result['error']}"
    line = (
        f"{result['path']}  frames={result['num_frames']} fps={result['fps']:.3f} "
        f"size={result['width']}x{result['height']} rotation={result['rotation']} "
        f"duration={result['duration']:.2f}s codec={result['codec']}"
    )
    if result["decode_error"]:
        line += f"  WARNING {result['decode_error']}"
    if result.get("warning"):
        line += f"  WARNING {result['warning']}"
    return line


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given (even without a video extension: probe decides); folders expanded."""
    from vsslkit.data.video import is_video_file

    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.is_file() and is_video_file(p)))
        else:
            out.append(path)
    return out
