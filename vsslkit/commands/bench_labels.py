"""`vsslkit bench labels`: seed 003's 27 labels per second, with the flow cached, vs computing the flow.

One run, the same random stride-1 clips of 8 frames, centre-cropped to 56 px: (1) the labels alone
(`clip_labels` on batches of 32: motion boundaries, 3 patterns, orientation and colour histograms),
(2) reading frames and flow from the caches plus the labels (what a training step pays), and (3)
the baseline, computing the clip's optical flow (7 Farneback pairs at 56 px, one thread), which the
cache saves. The goal (issue 16) is >= 500 clips/s for (1) on the 2-core CPU. Training computes the
labels in the training process, one `clip_labels` call per batch after augmentation
(`StatisticsTask.pixel_labels`), so one process on batches of 32 is what a training step gets; the
machine's load average is printed beside the rates because other jobs slow the wall clock. Without
`--data` it renders a small synthetic set (98 videos of 24-32 frames at 64 px) in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

CLIP_LEN, SIZE, BATCH = 8, 56, 32
GOAL = 500.0  # clips/s, issue 16


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("labels", help="statistics labels clips/s (flow cached) vs computing the flow",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="a dataset folder (default: render a small synthetic set)")
    parser.add_argument("--store", type=Path, default=None, help="frame store for --data (default: a temporary one)")
    parser.add_argument("--clips", type=int, default=256, help="random clips (default 256)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import cv2

    from vsslkit.data.datasets import open_dataset
    from vsslkit.data.flow_cache import FlowCache, FlowEstimator
    from vsslkit.data.store import FrameStore
    from vsslkit.errors import UsageError
    from vsslkit.tasks.statistics_labels import clip_labels

    if args.clips < BATCH:
        raise UsageError(f"--clips {args.clips}", f"must be at least one batch ({BATCH})")
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix="vsslkit-bench-labels-") as tmp:
        if args.data is None:
            from vsslkit.data.synthetic import make_synthetic

            root = make_synthetic(Path(tmp) / "data", videos_per_class=7, size=64, length_range=(24, 32),
                                  progress=False, workers=2)
            what = "synthetic set (98 videos of 24-32 frames, 64 px)"
        else:
            root, what = args.data, str(args.data)
        paths = open_dataset(root, subset="all").paths
        store = FrameStore(args.store or Path(tmp) / "store", short_side=64)
        flow = FlowCache(store)
        built = flow.build(paths, progress=False)
        for path, reason in built.skipped:
            print(f"skipped {path}: {reason}")
        lengths = {p: store.num_frames(p) for p in built.ok if store.num_frames(p) >= CLIP_LEN}
        if not lengths:
            raise UsageError(root, f"no video has the {CLIP_LEN} frames a clip needs")
        rng = np.random.default_rng(args.seed)
        videos = list(lengths)
        picks = [(videos[i], int(rng.integers(0, lengths[videos[i]] - CLIP_LEN + 1)))
                 for i in rng.integers(0, len(videos), args.clips)]

        def read(batch):
            frames = np.stack([store.read(p, np.arange(s, s + CLIP_LEN)) for p, s in batch])
            flows = np.stack([flow.read(p, np.arange(s, s + CLIP_LEN)) for p, s in batch])
            top, left = (frames.shape[2] - SIZE) // 2, (frames.shape[3] - SIZE) // 2
            return (frames[:, :, top : top + SIZE, left : left + SIZE],
                    flows[:, :, top : top + SIZE, left : left + SIZE])

        batches = [picks[i : i + BATCH] for i in range(0, len(picks) - BATCH + 1, BATCH)]
        n = len(batches) * BATCH
        data = [read(b) for b in batches]  # warm the memmaps
        clip_labels(*data[0])
        start, cpu = time.perf_counter(), time.process_time()
        for frames, flows in data:
            clip_labels(frames, flows)
        labels_s, labels_cpu = time.perf_counter() - start, time.process_time() - cpu
        start, cpu = time.perf_counter(), time.process_time()
        for b in batches:
            clip_labels(*read(b))
        read_labels_s, read_cpu = time.perf_counter() - start, time.process_time() - cpu
        estimator = FlowEstimator("farneback")
        start, cpu = time.perf_counter(), time.process_time()
        for frames, _ in data:
            for clip in frames:
                gray = estimator.gray(clip)
                for i in range(CLIP_LEN - 1):
                    estimator.pair(gray[i], gray[i + 1])
        flow_s, flow_cpu = time.perf_counter() - start, time.process_time() - cpu
    load = os.getloadavg()[0]
    labels_rate, read_rate, flow_rate = n / labels_s, n / read_labels_s, n / flow_s
    print(f"bench labels: {n} random clips of {CLIP_LEN} x {SIZE}^2 (stride 1, centre crop) from {what}, "
          f"batches of {BATCH}, seed {args.seed}")
    print(f"  (wall clock; in brackets per CPU-second of this process, which a machine shared with other jobs "
          f"inflates less; load average {load:.1f} on {os.cpu_count()} cores)")
    print(f"  27 labels, flow cached:          {labels_rate:8.1f} clips/s ({n / labels_cpu:.1f})")
    print(f"  read frames + flow + 27 labels:  {read_rate:8.1f} clips/s ({n / read_cpu:.1f})")
    print(f"  computing the flow (Farneback, {CLIP_LEN - 1} pairs at {SIZE}^2, 1 thread): {flow_rate:8.1f} clips/s "
          f"({n / flow_cpu:.1f})")
    print(f"labels / flow computation: {labels_rate / flow_rate:.1f}x (per CPU-second {flow_cpu / labels_cpu:.1f}x); "
          f"goal >= {GOAL:.0f} clips/s: {'met' if labels_rate >= GOAL else 'NOT met'} ({labels_rate:.0f} wall, "
          f"{n / labels_cpu:.0f} per CPU-second)")
    return 0
