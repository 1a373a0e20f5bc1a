"""`vsslkit bench pipeline`: can the input pipeline feed the model? Both measured in one run.

Supply: clips/s that sampler → frame store → collate → batched augmentation (`BatchPreparer`:
random crop, flip, float, on the training device) deliver with 0..N DataLoader workers, the
model idle. Demand: clips/s the model consumes in a bare training step (forward, backward, SGD)
on an in-memory batch. The loader is the bottleneck when its best supply is below the demand.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from vsslkit.commands.store_args import add_store_format_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("pipeline", help="loader clips/s with 0..N workers vs the model's clips/s",
                              description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="r3d_10")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--frames", type=int, default=16, help="frames per clip")
    p.add_argument("--size", type=int, default=112, help="crop size")
    p.add_argument("--short-side", type=int, default=128, help="stored frames' short side")
    add_store_format_arguments(p, default="jpeg")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader worker counts to try")
    p.add_argument("--batches", type=int, default=10, help="timed batches per worker count")
    p.add_argument("--steps", type=int, default=5, help="timed model steps")
    p.add_argument("--videos", type=int, default=8, help="generated 320x240 videos")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


@dataclass(frozen=True)
class PipelineBench:
    """Loader clips/s per worker count (model idle) and the model's clips/s (loader idle)."""

    loader: dict[int, float]
    model: float

    @property
    def bottleneck(self) -> str:
        return "loader" if max(self.loader.values()) < self.model else "model"


def make_clip_loader(store, paths, *, task, batch_size: int, workers: int, seed: int = 0):
    """The training input pipeline of `vsslkit pretrain` (sampler → store → collate), as a DataLoader."""
    import torch

    from vsslkit.data.clips import ClipDataset, EpochSampler, collate

    dataset = ClipDataset(paths, None, [store.num_frames(p) for p in paths], store, task.sample, seed=seed,
                          min_frames=task.min_frames)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate,
                                       sampler=EpochSampler(len(dataset), seed=seed), num_workers=workers,
                                       persistent_workers=workers > 0, pin_memory=False, drop_last=False)


def loader_clips_per_s(loader, prepare, batches: int, device) -> float:
    """Clips/s over `batches` batches after the first (worker start-up excluded), epochs chained."""
    from vsslkit.commands.bench_train import _sync

    def forever():
        epoch = 0
        while True:
            loader.sampler.set_epoch(epoch)
            yield from loader
            epoch += 1

    it = forever()
    prepare(next(it), step=0)
    clips, start = 0, time.perf_counter()
    for step in range(1, batches + 1):
        out = prepare(next(it), step=step)
        clips += len(out["clips"]["clip"])
    _sync(device)
    return clips / (time.perf_counter() - start)


def bench_pipeline(*, backbone: str = "r3d_10", width: float = 0.25, batch_size: int = 8, frames: int = 16,
                   size: int = 112, short_side: int = 128, store_format: str = "jpeg", jpeg_quality: int = 90,
                   workers: list[int] = (0, 1, 2), batches: int = 10, steps: int = 5, videos: int = 8,
                   device: str = "cpu", seed: int = 0) -> PipelineBench:
    """Measure supply and demand as in the module docstring."""
    import numpy as np

    from vsslkit.commands.bench_data import make_bench_videos
    from vsslkit.commands.bench_train import make_bare_step, time_steps
    from vsslkit.data.clips import BatchPreparer
    from vsslkit.data.stores import open_store
    from vsslkit.train.distributed import resolve_device

    dev = resolve_device(device)
    _, task, step = make_bare_step(backbone=backbone, width=width, batch_size=batch_size, frames=frames, size=size,
                                   device=dev, seed=seed)
    step()  # warm-up (allocator, cudnn autotuning)
    model_rate = batch_size / float(np.median(time_steps(step, steps, dev)))
    with tempfile.TemporaryDirectory(prefix="vsslkit-bench-pipeline-") as tmp:
        paths = make_bench_videos(Path(tmp) / "videos", count=videos, num_frames=max(task.min_frames, 100),
                                  gop=25, seed=seed)
        store = open_store(Path(tmp) / "store", format=store_format, short_side=short_side, quality=jpeg_quality)
        report = store.build(paths, progress=False)
        if report.skipped:
            raise RuntimeError(f"benchmark videos failed to store: {report.skipped}")
        prepare = BatchPreparer(crop_size=size, seed=seed, device=dev)
        supply = {}
        for w in workers:
            loader = make_clip_loader(store, paths, task=task, batch_size=batch_size, workers=w, seed=seed)
            supply[w] = loader_clips_per_s(loader, prepare, batches, dev)
            del loader  # stops persistent workers before the next count starts
    return PipelineBench(loader=supply, model=model_rate)


def run(args: argparse.Namespace) -> int:
    import torch

    if min(args.workers) < 0 or args.batches < 1 or args.steps < 1:
        print("--workers must be >= 0, --batches and --steps >= 1")
        return 2
    r = bench_pipeline(backbone=args.backbone, width=args.width, batch_size=args.batch_size, frames=args.frames,
                       size=args.size, short_side=args.short_side, store_format=args.store_format,
                       jpeg_quality=args.jpeg_quality or 90, workers=args.workers, batches=args.batches, steps=args.steps,
                       videos=args.videos, device=args.device, seed=args.seed)
    print(f"bench pipeline: {args.backbone} width {args.width}, batch {args.batch_size} x {args.frames}x{args.size}x"
          f"{args.size}, {args.store_format} store (short side {args.short_side}), {args.videos} generated videos, "
          f"{torch.get_num_threads()} torch threads, device {args.device}")
    print(f"  model consumes      : {r.model:8.1f} clips/s (bare training step)")
    for w, rate in r.loader.items():
        print(f"  loader, {w:2d} workers  : {rate:8.1f} clips/s  = {rate / r.model:5.2f}x the model's need")
    best = max(r.loader, key=r.loader.get)
    print(f"  bottleneck: {r.bottleneck} (best loader {r.loader[best]:.1f} clips/s with {best} workers "
          f"= {r.loader[best] / r.model:.2f}x the model)")
    return 0
