"""`vsslkit bench train`: what the training loop costs on top of the bare model step.

In one run, on the same model and batch size: (a) forward + backward + SGD step on a fixed
in-memory batch; (b) `fit` end to end (frame-store reads of generated videos, collate,
`prepare_batch` crops, logging, checkpoint cadence). Their ratio is the loop's overhead;
a ratio near 1 means the data pipeline keeps up with the model. The two alternate over several
rounds (bare, loop, bare; again) and each round gives one ratio: on a shared machine the speed of
a step drifts by a third within a minute, and only a bare step timed next to the loop it is compared
with cancels that drift. The logging and checkpoint cadence default to `vsslkit pretrain`'s.

Measured on the 2-core CPU (docs/scaling.md, "Loop overhead"): the loop prepares batches inline when
torch's threads fill every core (a background thread could only steal a core mid-step) and on a
thread otherwise, writes checkpoints on a background thread, and keeps its prefetch thread off
OpenMP (a second thread team slowed every later torch op by half).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from vsslkit.commands.arguments import device
from vsslkit.commands.store_args import add_store_format_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="bare model step vs the full fit loop (step times, overhead, clips/s)",
                              description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="r3d_10")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--frames", type=int, default=8, help="frames per clip")
    p.add_argument("--size", type=int, default=64, help="crop size")
    p.add_argument("--steps", type=int, default=100,
                   help="timed steps of each measurement in a round (default 100: 10 logged spans for the loop's "
                        "median, a checkpoint at every epoch end and at step 100)")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds of bare / loop / bare (default 3): one overhead ratio each, and their median")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps before the bare measurement")
    p.add_argument("--videos", type=int, default=80,
                   help="generated videos for the loop measurement (default 80: epochs of 20 steps at batch 4; with 8 "
                        "an epoch is 2 steps and fit checkpoints at the end of every one)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers in the loop measurement")
    p.add_argument("--checkpoint-every", type=int, default=100,
                   help="checkpoint cadence in the loop (default 100, as `vsslkit pretrain`; an epoch end also writes one)")
    p.add_argument("--log-every", type=int, default=10, help="log cadence in the loop (default 10, as `vsslkit pretrain`)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--device", type=device, default="cpu", help="cpu | cuda | auto")
    add_store_format_arguments(p, default="raw")
    p.set_defaults(func=run)


@dataclass(frozen=True)
class TrainBench:
    """Median seconds per step of the bare model step and of the full loop in each round."""

    bare_step_s: tuple[float, ...]
    loop_step_s: tuple[float, ...]
    batch_size: int

    @property
    def overheads(self) -> tuple[float, ...]:
        """The loop's step time over the bare step's, one ratio per round."""
        return tuple(loop / bare for loop, bare in zip(self.loop_step_s, self.bare_step_s, strict=True))

    @property
    def overhead(self) -> float:
        """The median round's ratio: one slow phase of a shared machine moves one round, not this."""
        return _median(self.overheads)

    def clips_per_s(self, step_s: float) -> float:
        return self.batch_size / step_s


def bench_train(*, backbone: str = "r3d_10", width: float = 0.25, batch_size: int = 4, frames: int = 8,
                size: int = 64, steps: int = 100, rounds: int = 3, warmup: int = 2, videos: int = 80,
                workers: int = 0, checkpoint_every: int = 100, log_every: int = 10, device: str = "cpu",
                seed: int = 0, work_dir: str | Path | None = None, store_format: str = "raw",
                jpeg_quality: int = 90) -> TrainBench:
    """Measure (a) and (b) of the module docstring in `rounds` rounds; seconds per step for both."""
    import numpy as np
    import torch

    from vsslkit.data.clips import BatchPreparer, ClipDataset, EpochSampler, collate
    from vsslkit.data.stores import open_store
    from vsslkit.data.writer import write_video
    from vsslkit.train.distributed import resolve_device
    from vsslkit.train.loop import fit, make_optimizer

    dev = resolve_device(device)
    model, task, bare_step = make_bare_step(backbone=backbone, width=width, batch_size=batch_size, frames=frames,
                                            size=size, device=dev, seed=seed)

    def time_bare() -> list[float]:
        return time_steps(bare_step, steps, dev)

    for _ in range(warmup):
        bare_step()

    # (b) the same model in `fit`, fed from a frame store of generated videos
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        root = Path(tmp)
        rng = np.random.default_rng(seed)
        length = max(task.min_frames, 2 * frames * 4)
        paths = []
        for v in range(videos):
            clip = rng.integers(0, 255, size=(length, size, size * 4 // 3 // 2 * 2, 3), dtype=np.uint8)
            paths.append(write_video(root / "videos" / f"v{v}.mp4", clip, crf=28))
        store = open_store(root / "store", format=store_format, short_side=size, quality=jpeg_quality)
        report = store.build(paths, progress=False)
        if report.skipped:
            raise RuntimeError(f"benchmark videos failed to store: {report.skipped}")
        dataset = ClipDataset(paths, None, [store.num_frames(p) for p in paths], store, task.sample, seed=seed,
                              min_frames=task.min_frames)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate,
                                             sampler=EpochSampler(len(dataset), seed=seed), num_workers=workers,
                                             persistent_workers=workers > 0)
        bare, loop = [], []
        for r in range(rounds):
            bare_times = time_bare()
            result = fit(model, loader, optimizer=make_optimizer("sgd", model.parameters(), lr=0.01), max_steps=steps,
                         out_dir=root / f"run{r}", prepare=BatchPreparer(crop_size=size, seed=seed, device=dev),
                         device=dev, log_every=log_every, checkpoint_every=checkpoint_every, resume=False,
                         progress=False)
            # Seconds per step between consecutive log rows (each span includes its share of logging
            # and checkpoints); the median resists the load spikes of a shared machine.
            stamps = [0.0] + [row["time"] for row in result.history]
            logged = [0] + [row["step"] for row in result.history]
            loop_times = [(stamps[i + 1] - stamps[i]) / (logged[i + 1] - logged[i]) for i in range(len(stamps) - 1)]
            bare_times += time_bare()  # after the loop too, so a slow phase of the machine hits both sides
            bare.append(_median(bare_times))
            loop.append(_median(loop_times))
    return TrainBench(bare_step_s=tuple(bare), loop_step_s=tuple(loop), batch_size=batch_size)


def _median(values) -> float:
    import numpy as np

    return float(np.median(values))


def make_bare_step(*, backbone: str, width: float, batch_size: int, frames: int, size: int, device,
                   seed: int = 0, amp: bool = False, channels_last: bool = False):
    """(model, task, step): `step()` runs forward + backward + SGD step on one fixed in-memory batch.

    The model is a pace-task `PretextModel`: the same heads and loss the loop trains.
    """
    import torch

    from vsslkit.models import build_backbone
    from vsslkit.tasks import make_task
    from vsslkit.tasks.model import PretextModel
    from vsslkit.train.loop import make_optimizer

    dev = torch.device(device)
    torch.manual_seed(seed)
    task = make_task("pace", clip_len=frames)
    model = PretextModel(build_backbone(backbone, width=width), task).to(dev)
    clips = torch.randn(batch_size, 3, frames, size, size, device=dev)
    if channels_last:
        model.to(memory_format=torch.channels_last_3d)
        clips = clips.contiguous(memory_format=torch.channels_last_3d)
    batch = {"clips": {"clip": clips}, "labels": {"speed": torch.randint(0, task.heads["speed"], (batch_size,), device=dev)}}
    opt = make_optimizer("sgd", model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler(dev.type, enabled=amp and dev.type == "cuda")
    amp_dtype = torch.float16 if dev.type == "cuda" else torch.bfloat16
    model.train()

    def step() -> None:
        with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp):
            loss, _ = model.training_step(batch)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return model, task, step


def time_steps(step, steps: int, device) -> list[float]:
    """Seconds of each of `steps` calls of `step` (synchronised on CUDA)."""
    import torch

    dev = torch.device(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        _sync(dev)
        times.append(time.perf_counter() - t0)
    return times


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    r = bench_train(backbone=args.backbone, width=args.width, batch_size=args.batch_size, frames=args.frames,
                    size=args.size, steps=args.steps, rounds=args.rounds, warmup=args.warmup, videos=args.videos,
                    workers=args.workers, checkpoint_every=args.checkpoint_every, log_every=args.log_every,
                    device=args.device, store_format=args.store_format, jpeg_quality=args.jpeg_quality or 90)
    print(f"bench train: {args.backbone} width {args.width}, batch {args.batch_size} x {args.frames}x{args.size}x"
          f"{args.size}, {args.rounds} rounds of {args.steps} steps, {torch.get_num_threads()} threads, device "
          f"{args.device}, {args.store_format} store; loop: store reads, crops, logging every {args.log_every}, "
          f"checkpoint every {args.checkpoint_every} and at epoch ends")
    for i, (bare, loop) in enumerate(zip(r.bare_step_s, r.loop_step_s, strict=True)):
        print(f"  round {i + 1}: bare model step {bare * 1000:6.1f} ms ({r.clips_per_s(bare):6.1f} clips/s), "
              f"full fit loop {loop * 1000:6.1f} ms ({r.clips_per_s(loop):6.1f} clips/s): x{loop / bare:.2f}")
    print(f"  loop overhead   : x{r.overhead:.2f} of the bare step (median of {len(r.overheads)} rounds)")
    return 0
