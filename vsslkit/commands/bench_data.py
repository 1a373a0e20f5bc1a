"""`vsslkit bench data`: random clips from the frame store vs decoded straight from the files.

Both sides produce the same frames (same short side, checked clip by clip), from the same
random 16-frame clips (stride 1-4, half reversed, fixed seed), measured in one run so the ratio
is meaningful on a noisy machine. Without `--videos` it generates 320x240 H.264 files with one
keyframe every 250 frames, as typical downloaded videos have.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

CLIP_LEN = 16
STRIDES = (1, 2, 3, 4)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="clips/s: frame store vs decoding from the video files",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--videos", nargs="+", type=Path, metavar="DIR_OR_FILE",
                        help="videos to read (default: generate 3 x 10 s 320x240 H.264, gop 250)")
    parser.add_argument("--clips", type=int, default=100, help="random clips read from each source (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clip choice and generated videos")
    parser.add_argument("--short-side", type=int, default=128, help="frame store short side (default 128)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vsslkit.commands.data_io import expand_paths
    from vsslkit.data.store import FrameStore

    if args.clips < 1:
        print(f"--clips must be >= 1, got {args.clips}")
        return 2
    with tempfile.TemporaryDirectory(prefix="vsslkit-bench-data-") as tmp:
        if args.videos:
            paths = expand_paths(args.videos)
            source = "video files"
        else:
            paths = make_bench_videos(Path(tmp) / "videos", seed=args.seed)
            source = "generated 320x240 H.264 videos of 250 frames (25 fps, gop 250)"
        store = FrameStore(Path(tmp) / "store", short_side=args.short_side)
        start = time.perf_counter()
        report = store.build(paths, progress=False)
        build_s = time.perf_counter() - start
        for path, reason in report.skipped:
            print(f"skipped {path}: {reason}")
        lengths = {p: store.num_frames(p) for p in report.ok}
        clips = sample_clips(lengths, args.clips, np.random.default_rng(args.seed))
        if not clips:
            print(f"no video has the {(CLIP_LEN - 1) * STRIDES[0] + 1} frames a clip needs")
            return 1
        frames, keyframes = count_keyframes(report.ok)
        print(f"bench data: {len(report.ok)} {source}; {frames} frames, {keyframes} keyframes "
              f"(one per {frames / keyframes:.0f} frames); {len(clips)} clips of {CLIP_LEN} frames, stride 1-4, half reversed, "
              f"seed {args.seed}, short side {args.short_side}")
        print(f"store build: {len(report.ok)} videos in {build_s:.2f} s (decoded once)")
        for path in lengths:  # open each memmap once, as a DataLoader worker does on its first clip
            store.read(path, [0])
        store_rate, store_warm, store_frames = _time_clips(lambda p, idx: store.read(p, idx), clips, 1.0)
        decode_rate, _, decode_frames = _time_clips(lambda p, idx: _decode_clip(p, idx, args.short_side), clips)
        same = all(np.array_equal(a, b) for a, b in zip(store_frames, decode_frames))
    print(f"frame store: {store_rate:.1f} clips/s (memmap gather, first pass; {store_warm:.0f} clips/s warm)")
    print(f"decode_clip: {decode_rate:.1f} clips/s (seek to keyframe + decode from the video file)")
    print(f"ratio: {store_rate / decode_rate:.1f}x (store / decode)")
    print(f"identical frames: {'yes' if same else 'NO'}")
    return 0 if same else 1


def make_bench_videos(out_dir: Path, *, count: int = 3, num_frames: int = 250, height: int = 240,
                      width: int = 320, gop: int = 250, seed: int = 0) -> list[Path]:
    """Textured scenes with moving blocks, so the encoder has real motion to code."""
    from vsslkit.data.writer import write_video

    rng = np.random.default_rng(seed)
    paths = []
    for v in range(count):
        background = rng.integers(0, 120, size=(height, width, 3), dtype=np.uint8)
        frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
        velocity = rng.uniform(-3, 3, size=(4, 2))
        origin = rng.uniform(0, 1, size=(4, 2)) * (height, width)
        colors = rng.integers(130, 256, size=(4, 3))
        for t in range(num_frames):
            frame = np.roll(background, shift=t // 2, axis=1)  # slow pan
            for pos, color in zip((origin + velocity * t) % (height - 24, width - 24), colors):
                y, x = int(pos[0]), int(pos[1])
                frame[y : y + 24, x : x + 24] = color
            frames[t] = frame
        paths.append(write_video(out_dir / f"bench_{v}.mp4", frames, fps=25, gop=gop))
    return paths


def count_keyframes(paths: list[Path]) -> tuple[int, int]:
    """(video packets, keyframes) over `paths`: the keyframe spacing decides seek cost."""
    import av

    frames = keyframes = 0
    for path in paths:
        with av.open(str(path), metadata_errors="ignore") as container:
            for packet in container.demux(video=0):
                if packet.size:
                    frames += 1
                    keyframes += bool(packet.is_keyframe)
    return frames, max(keyframes, 1)


def sample_clips(lengths: dict[Path, int], count: int, rng: np.random.Generator) -> list[tuple[Path, np.ndarray]]:
    """`count` constant-stride clips over videos long enough; exactly every second one reversed."""
    from vsslkit.plans import constant_plan

    usable = [p for p, n in lengths.items() if n >= (CLIP_LEN - 1) * STRIDES[0] + 1]
    clips = []
    for i in range(count if usable else 0):
        path = usable[int(rng.integers(len(usable)))]
        fitting = [s for s in STRIDES if (CLIP_LEN - 1) * s + 1 <= lengths[path]]
        stride = fitting[int(rng.integers(len(fitting)))]
        plan = constant_plan(lengths[path], CLIP_LEN, stride, rng, reverse=i % 2 == 1)
        clips.append((path, plan.indices))
    return clips


def _decode_clip(path: Path, indices: np.ndarray, short_side: int) -> np.ndarray:
    from vsslkit.data.video import decode_clip

    return decode_clip(path, indices, short_side=short_side)


def _time_clips(
    read, clips: list[tuple[Path, np.ndarray]], min_seconds: float = 0.0
) -> tuple[float, float | None, list[np.ndarray]]:
    """(clips/s of the first pass, clips/s over further passes lasting `min_seconds` or None, frames).

    The first pass over a fresh memmap pays the page mapping of every frame it touches (as a
    new DataLoader worker does); repeated passes show the warm rate."""
    out = []
    start = time.perf_counter()
    for path, indices in clips:
        out.append(read(path, indices))
    first = len(clips) / (time.perf_counter() - start)
    if min_seconds <= 0:
        return first, None, out
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_seconds or done == 0:
        for path, indices in clips:
            read(path, indices)
        done += len(clips)
    return first, done / elapsed, out
