"""How reliable are seed 003's motion labels on a dataset? Labels from two flow estimators compared.

Draws 96 seeded centre-cropped (56 px) 8-frame clips of the test split, computes the 14 motion
labels once from the cached Farneback flow and once from DIS flow computed on the same crops, and
prints per label how often the two agree beside the majority rate. Where two reasonable estimators
disagree, the label is mostly estimator noise, which bounds what a network can learn from it.

    PYTHONPATH=. python data_scripts/statistics_label_agreement.py DATA_DIR STORE_DIR [SHORT_SIDE]
"""

from __future__ import annotations

import sys

import numpy as np

from vsslkit.data.datasets import open_dataset
from vsslkit.data.flow_cache import FlowCache, FlowEstimator
from vsslkit.data.store import FrameStore
from vsslkit.plans import IGNORE_INDEX
from vsslkit.tasks.statistics_labels import MOTION_LABELS, clip_labels, difficulty


def main(data: str, store_dir: str, short_side: int = 64, clips: int = 96, size: int = 56) -> None:
    index = open_dataset(data, split=1, subset="test")
    store = FrameStore(store_dir, short_side=short_side)
    cache, dis = FlowCache(store), FlowEstimator("dis")
    rng = np.random.default_rng(0)
    frames, farneback, other = [], [], []
    for k in rng.choice(len(index.paths), clips, replace=False):
        path = index.paths[k]
        start = int(rng.integers(0, store.num_frames(path) - 8))
        f, fl = store.read(path, np.arange(start, start + 8)), cache.read(path, np.arange(start, start + 8))
        top, left = (f.shape[1] - size) // 2, (f.shape[2] - size) // 2
        f, fl = f[:, top : top + size, left : left + size], fl[:, top : top + size, left : left + size]
        frames.append(f), farneback.append(fl), other.append(dis.video(f))
    frames, farneback, other = np.stack(frames), np.stack(farneback), np.stack(other)
    a, b = clip_labels(frames, farneback, appearance=False), clip_labels(frames, other, appearance=False)
    print(f"{clips} test clips of {data}: motion labels from Farneback (cached) vs DIS (preset fast)")
    print("| label | Farneback = DIS | majority (Farneback) |\n|---|---|---|")
    for name in MOTION_LABELS:
        keep = (a[name] != IGNORE_INDEX) & (b[name] != IGNORE_INDEX)
        agree = float(np.mean(a[name][keep] == b[name][keep]))
        print(f"| {name} | {100 * agree:.0f} % | {100 * np.bincount(a[name][keep]).max() / keep.sum():.0f} % |")
    print(f"curriculum score f (pattern-1 share of the motion-boundary magnitude): median "
          f"{np.median(difficulty(farneback)):.3f} (1/16 = 0.0625 would be no concentration at all)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:4]))
