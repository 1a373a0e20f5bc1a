"""`vsslkit bench data`: random clips from the raw and JPEG frame stores vs decoded from the files.

All three sources read the same random 16-frame clips (stride 1-4, half reversed, fixed seed)
at the same short side, in one run, so the ratios are meaningful on a noisy machine; the raw
store must return exactly the decoded frames and the JPEG store frames within JPEG error (PSNR
printed). Bytes per frame are the stores' file sizes over their frame counts. Without
`--videos` it generates 320x240 H.264 files with one keyframe every 250 frames, as typical
downloaded videos have (their noise texture is a worst case for JPEG: measure real videos too).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

CLIP_LEN = 16
STRIDES = (1, 2, 3, 4)
SMALLER_GOAL, FASTER_GOAL = 8.0, 20.0  # issue 19: JPEG >= 8x smaller than raw, >= 20x faster than decoding


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="clips/s and bytes/frame: raw store, JPEG store, decoding the files",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--videos", nargs="+", type=Path, metavar="DIR_OR_FILE",
                        help="videos to read (default: generate 3 x 10 s 320x240 H.264, gop 250)")
    parser.add_argument("--clips", type=int, default=100, help="random clips read from each source (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clip choice and generated videos")
    parser.add_argument("--short-side", type=int, default=128, help="frame store short side (default 128)")
    parser.add_argument("--jpeg-quality", type=int, default=90, help="JPEG store quality (default 90)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vsslkit.commands.data_io import expand_paths
    from vsslkit.data.jpeg_store import JpegFrameStore
    from vsslkit.data.store import FrameStore

    quality = getattr(args, "jpeg_quality", 90)
    if args.clips < 1:
        print(f"--clips must be >= 1, got {args.clips}")
        return 2
    if not 1 <= quality <= 100:
        print(f"--jpeg-quality must be in 1..100, got {quality}")
        return 2
    with tempfile.TemporaryDirectory(prefix="vsslkit-bench-data-") as tmp:
        if args.videos:
            paths = expand_paths(args.videos)
            source = "video files"
        else:
            paths = make_bench_videos(Path(tmp) / "videos", seed=args.seed)
            source = "generated 320x240 H.264 videos of 250 frames (25 fps, gop 250)"
        raw = FrameStore(Path(tmp) / "store", short_side=args.short_side)
        jpeg = JpegFrameStore(Path(tmp) / "store", short_side=args.short_side, quality=quality)
        start = time.perf_counter()
        report = raw.build(paths, progress=False)
        raw_build_s = time.perf_counter() - start
        start = time.perf_counter()
        jpeg_report = jpeg.build(report.ok, progress=False)
        jpeg_build_s = time.perf_counter() - start
        for path, reason in report.skipped + jpeg_report.skipped:
            print(f"skipped {path}: {reason}")
        lengths = {p: raw.num_frames(p) for p in jpeg_report.ok}
        clips = sample_clips(lengths, args.clips, np.random.default_rng(args.seed))
        if not clips:
            print(f"no video has the {(CLIP_LEN - 1) * STRIDES[0] + 1} frames a clip needs")
            return 1
        frames, keyframes = count_keyframes(list(lengths))
        stored = sum(lengths.values())
        raw_bpf = sum((raw.root / f"{raw.key(p)}.npy").stat().st_size for p in lengths) / stored
        jpeg_bpf = sum((jpeg.root / f"{jpeg.key(p)}.jpgs").stat().st_size for p in lengths) / stored
        print(f"bench data: {len(lengths)} {source}; {frames} frames, {keyframes} keyframes "
              f"(one per {frames / keyframes:.0f} frames); {len(clips)} clips of {CLIP_LEN} frames, stride 1-4, half reversed, "
              f"seed {args.seed}, short side {args.short_side}")
        print(f"store build: raw {raw_build_s:.2f} s, jpeg q{quality} {jpeg_build_s:.2f} s (each decodes every video once)")
        for path in lengths:  # open each file once, as a DataLoader worker does on its first clip
            raw.read(path, [0])
            jpeg.read(path, [0])
        raw_rate, raw_warm, raw_frames = _time_clips(lambda p, idx: raw.read(p, idx), clips, 1.0)
        jpeg_rate, jpeg_warm, jpeg_frames = _time_clips(lambda p, idx: jpeg.read(p, idx), clips, 1.0)
        decode_rate, _, decode_frames = _time_clips(lambda p, idx: _decode_clip(p, idx, args.short_side), clips)
    same = all(np.array_equal(a, b) for a, b in zip(raw_frames, decode_frames))
    psnrs = [psnr(a, b) for a, b in zip(jpeg_frames, raw_frames)]
    smaller, faster = raw_bpf / jpeg_bpf, jpeg_rate / decode_rate
    print(f"bytes/frame: raw {raw_bpf:,.0f}; jpeg q{quality} {jpeg_bpf:,.0f}  -> jpeg {smaller:.1f}x smaller")
    print(f"raw store  : {raw_rate:8.1f} clips/s (memmap gather, first pass; {raw_warm:.0f} clips/s warm)")
    print(f"jpeg store : {jpeg_rate:8.1f} clips/s (decode 16 JPEGs, first pass; {jpeg_warm:.0f} clips/s warm)")
    print(f"decode_clip: {decode_rate:8.1f} clips/s (seek to keyframe + decode from the video file)")
    print(f"ratios: raw / decode {raw_rate / decode_rate:.1f}x; jpeg / decode {faster:.1f}x; "
          f"raw / jpeg {raw_rate / jpeg_rate:.1f}x")
    print(f"jpeg vs raw frames: PSNR mean {np.mean(psnrs):.1f} dB, min {np.min(psnrs):.1f} dB over {len(psnrs)} clips")
    print(f"identical frames (raw store vs decode): {'yes' if same else 'NO'}")
    print(f"goals: jpeg >= {SMALLER_GOAL:.0f}x smaller than raw: {'met' if smaller >= SMALLER_GOAL else 'NOT met'}; "
          f"jpeg >= {FASTER_GOAL:.0f}x faster than decoding: {'met' if faster >= FASTER_GOAL else 'NOT met'}")
    return 0 if same else 1


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of uint8 images in dB (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


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
