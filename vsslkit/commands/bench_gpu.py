"""`vsslkit bench gpu`: the GPU figures of docs/scaling.md, as ratios measured in one run.

(1) Training-step throughput of the thesis backbone (R(2+1)D-10, 16 x 112², batch 32): fp32 vs
AMP, each with and without channels_last. (2) JPEG decoding frames/s: `cv2.imdecode` and
`torchvision.io.decode_jpeg` on one CPU core vs `decode_jpeg(device="cuda")` in batches.
(3) The JPEG input pipeline (sampler → `.jpgs` files → collate → `BatchPreparer` on the device)
with 0/4/8/16 DataLoader workers, against the clips/s the model consumes.

It writes its own test frames (smooth scenes with moving blocks, 128 x 171, JPEG q90), needs no
video file and never imports PyAV, so it runs on a bare GPU host:
`python -m vsslkit.commands.bench_gpu --out gpu.json` (also `vsslkit bench gpu` where the full
CLI imports). `--tiny` runs every part in seconds on a CPU (for tests). `--render gpu.json`
prints the markdown table docs/scaling.md shows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class GpuBenchConfig:
    """What is measured; `tiny()` is the same code path at toy size."""

    backbone: str = "r2plus1d_10"
    width: float = 1.0
    batch_size: int = 32
    frames: int = 16
    size: int = 112
    steps: int = 10
    warmup: int = 3
    decode_frames: int = 2048
    decode_batch: int = 512
    videos: int = 640  # many batches per epoch: worker start-up must not dominate the loader figure
    video_frames: int = 96
    height: int = 128
    width_px: int = 171
    quality: int = 90
    workers: tuple[int, ...] = (0, 4, 8, 16)
    loader_batches: int = 40
    device: str = "cuda"

    @staticmethod
    def tiny() -> GpuBenchConfig:
        return GpuBenchConfig(width=0.125, batch_size=2, frames=4, size=32, steps=2, warmup=1, decode_frames=32,
                              decode_batch=16, videos=3, video_frames=24, height=40, width_px=53, workers=(0, 1),
                              loader_batches=2, device="cpu")


@dataclass
class GpuBenchResult:
    """Everything the run measured (JSON-ready); ratios are derived when rendering."""

    config: dict
    environment: dict
    train_clips_per_s: dict[str, float] = field(default_factory=dict)
    decode_frames_per_s: dict[str, float | None] = field(default_factory=dict)
    jpeg_bytes_per_frame: float = 0.0
    loader_clips_per_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def synthetic_frames(n: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """RGB frames that compress like camera footage (smooth texture, edges, a little noise, motion)."""
    import cv2

    base = cv2.resize(rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8), (width + n, height),
                      interpolation=cv2.INTER_CUBIC)
    out = np.empty((n, height, width, 3), dtype=np.uint8)
    blocks = rng.uniform(0, 1, (3, 2)) * (height - 12, width - 12)
    speed = rng.uniform(-2, 2, (3, 2))
    colors = rng.integers(0, 256, (3, 3))
    for t in range(n):
        frame = base[:, t : t + width].copy()  # a slow pan
        for pos, color in zip((blocks + speed * t) % (height - 12, width - 12), colors):
            y, x = int(pos[0]), int(pos[1])
            frame[y : y + 12, x : x + 12] = color
        noise = rng.integers(-3, 4, frame.shape)
        out[t] = np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return out


def measure_training(cfg: GpuBenchConfig, device) -> dict[str, float]:
    """Clips/s of a bare training step: fp32 / AMP x plain / channels_last."""
    from vsslkit.commands.bench_train import make_bare_step, time_steps

    out = {}
    for amp in (False, True):
        for channels_last in (False, True):
            _, _, step = make_bare_step(backbone=cfg.backbone, width=cfg.width, batch_size=cfg.batch_size,
                                        frames=cfg.frames, size=cfg.size, device=device, amp=amp,
                                        channels_last=channels_last)
            for _ in range(cfg.warmup):
                step()
            seconds = float(np.median(time_steps(step, cfg.steps, device)))
            out[("amp" if amp else "fp32") + ("_channels_last" if channels_last else "")] = cfg.batch_size / seconds
            del step
            _free(device)
    return out


def measure_decode(cfg: GpuBenchConfig, encoded: list[np.ndarray], device) -> tuple[dict[str, float | None], list[str]]:
    """Frames/s of JPEG decoding on one CPU core (two libraries) and batched on CUDA."""
    import torch
    from torchvision.io import decode_jpeg

    from vsslkit.data.jpeg_file import decode_batch_cuda, decode_frame

    notes = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        for e in encoded:
            decode_frame(e)
        out: dict[str, float | None] = {"cpu_cv2_1core": len(encoded) / (time.perf_counter() - start)}
        tensors = [torch.from_numpy(e) for e in encoded]
        start = time.perf_counter()
        decode_jpeg(tensors)
        out["cpu_torchvision_1core"] = len(encoded) / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    if device.type == "cuda":
        batches = [encoded[i : i + cfg.decode_batch] for i in range(0, len(encoded), cfg.decode_batch)]
        decode_batch_cuda(batches[0], device=str(device))  # warm-up: nvJPEG handles, memory pools
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        for batch in batches:
            decode_batch_cuda(batch, device=str(device))
        torch.cuda.synchronize(device)
        out["cuda_batched"] = len(encoded) / (time.perf_counter() - start)
    else:
        out["cuda_batched"] = None
        notes.append("no CUDA device: GPU JPEG decoding not measured")
    return out, notes


def measure_loader(cfg: GpuBenchConfig, paths: list[Path], device, seed: int = 0) -> dict[str, float]:
    """Clips/s of the JPEG input pipeline with each worker count (model idle)."""
    from vsslkit.commands.bench_pipeline import loader_clips_per_s, make_clip_loader
    from vsslkit.data.clips import BatchPreparer
    from vsslkit.data.jpeg_file import JpegFileSource
    from vsslkit.tasks import make_task

    task = make_task("pace", clip_len=cfg.frames)
    source = JpegFileSource()
    prepare = BatchPreparer(crop_size=cfg.size, seed=seed, device=device)
    out = {}
    for w in cfg.workers:
        loader = make_clip_loader(source, paths, task=task, batch_size=cfg.batch_size, workers=w, seed=seed)
        out[str(w)] = loader_clips_per_s(loader, prepare, cfg.loader_batches, device)
        del loader
    return out


def run_gpu_bench(cfg: GpuBenchConfig, *, seed: int = 0, log=print) -> GpuBenchResult:
    import torch
    import torchvision

    from vsslkit.data.jpeg_file import encode_frame, write_jpeg_file
    from vsslkit.train.distributed import resolve_device

    t0 = time.perf_counter()
    device = resolve_device(cfg.device)
    env = {"torch": torch.__version__, "torchvision": torchvision.__version__, "cpu_cores": os.cpu_count(),
           "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "cudnn_benchmark": bool(torch.backends.cudnn.benchmark)}
    result = GpuBenchResult(config={k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
                            environment=env)
    log(f"bench gpu: {env['device']}, torch {env['torch']}, {env['cpu_cores']} CPU cores")
    result.train_clips_per_s = measure_training(cfg, device)
    log(f"  training steps done ({time.perf_counter() - t0:.0f} s)")

    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="vsslkit-bench-gpu-") as tmp:
        paths, sizes = [], 0
        for v in range(cfg.videos):
            frames = synthetic_frames(cfg.video_frames, cfg.height, cfg.width_px, rng)
            path = Path(tmp) / f"v{v}.jpgs"
            sizes += write_jpeg_file(path, frames, cfg.quality)
            paths.append(path)
        result.jpeg_bytes_per_frame = sizes / (cfg.videos * cfg.video_frames)
        pool = synthetic_frames(min(cfg.decode_frames, 256), cfg.height, cfg.width_px, rng)
        encoded = [encode_frame(pool[i % len(pool)], cfg.quality) for i in range(cfg.decode_frames)]
        result.decode_frames_per_s, notes = measure_decode(cfg, encoded, device)
        result.notes += notes
        log(f"  decoding done ({time.perf_counter() - t0:.0f} s)")
        result.loader_clips_per_s = measure_loader(cfg, paths, device, seed)
        log(f"  loader done ({time.perf_counter() - t0:.0f} s)")
    result.seconds = time.perf_counter() - t0
    return result


def render_markdown(result: dict) -> str:
    """The docs/scaling.md GPU section's tables from a `--out` JSON (ratios against fp32 / 1 core)."""
    c, env = result["config"], result["environment"]
    train, dec, loader = result["train_clips_per_s"], result["decode_frames_per_s"], result["loader_clips_per_s"]
    header = (f"Measured with `vsslkit bench gpu` on {env['device']} ({env['cpu_cores']} CPU cores, torch "
              f"{env['torch']}, torchvision {env['torchvision']}) in {result['seconds']:.0f} s.")
    step = (f"**Training step**, {c['backbone']} width {c['width']}, batch {c['batch_size']} x {c['frames']} x "
            f"{c['size']}² (bare forward + backward + SGD step, median of {c['steps']}):")
    lines = [header, "", step, "", "| precision | layout | clips/s | vs fp32 |", "|---|---|---|---|"]
    amp_name = "AMP (bf16)" if env["device"] == "cpu" else "AMP (fp16)"
    for key, rate in train.items():
        precision, layout = (amp_name if key.startswith("amp") else "fp32"), (
            "channels_last" if key.endswith("channels_last") else "contiguous")
        lines.append(f"| {precision} | {layout} | {rate:,.1f} | {rate / train['fp32']:.2f}x |")
    decoding = (f"**JPEG decoding**, {c['height']} x {c['width_px']} frames at quality {c['quality']} "
                f"({result['jpeg_bytes_per_frame']:,.0f} bytes/frame):")
    lines += ["", decoding, "", "| decoder | frames/s | vs cv2 on 1 core |", "|---|---|---|"]
    names = {"cpu_cv2_1core": "cv2.imdecode, 1 CPU core", "cpu_torchvision_1core": "torchvision decode_jpeg, 1 CPU core",
             "cuda_batched": f"torchvision decode_jpeg on CUDA, batches of {c['decode_batch']}"}
    for key, rate in dec.items():
        shown = "not measured (no GPU)" if rate is None else f"{rate:,.0f}"
        ratio = "" if rate is None else f"{rate / dec['cpu_cv2_1core']:.1f}x"
        lines.append(f"| {names.get(key, key)} | {shown} | {ratio} |")
    need = {k: v for k, v in train.items() if k in ("fp32", "amp")}
    lines += ["", "**JPEG input pipeline** (sampler → `.jpgs` → collate → crops on the device) vs the model:", "",
              "| DataLoader workers | clips/s | vs fp32 step | vs AMP step |", "|---|---|---|---|"]
    for w, rate in loader.items():
        lines.append(f"| {w} | {rate:,.1f} | {rate / need['fp32']:.2f}x | {rate / need['amp']:.2f}x |")
    best = max(loader.values())
    verdict = "keeps up with" if best >= need["amp"] else "is slower than"
    lines += ["", (f"At its best worker count the loader {verdict} the AMP training step "
                   f"({best:,.1f} vs {need['amp']:,.1f} clips/s).")]
    lines += [f"Note: {n}" for n in result.get("notes", [])]
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("gpu", help="training step fp32/AMP/channels_last, JPEG decode CPU vs CUDA, loader vs model",
                              description=__doc__.splitlines()[0])
    _add_arguments(p)
    p.set_defaults(func=run)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    p.add_argument("--tiny", action="store_true", help="toy sizes on the CPU (seconds; for tests)")
    p.add_argument("--device", default=None, help="cuda (default) | cpu | auto")
    p.add_argument("--render", type=Path, metavar="JSON", help="only print the markdown tables of a results JSON")


def run(args: argparse.Namespace) -> int:
    if args.render:
        try:
            print(render_markdown(json.loads(args.render.read_text())))
        except (OSError, ValueError, KeyError) as exc:
            print(f"{args.render}: not a bench gpu result ({type(exc).__name__}: {exc})", file=sys.stderr)
            return 2
        return 0
    cfg = GpuBenchConfig.tiny() if args.tiny else GpuBenchConfig()
    if args.device:
        cfg = GpuBenchConfig(**{**asdict(cfg), "device": args.device})
    try:
        result = run_gpu_bench(cfg)
    except RuntimeError as exc:
        if "no CUDA device" in str(exc):
            print(f"error: {exc} (use --device cpu or --tiny)", file=sys.stderr)
            return 2
        raise
    data = asdict(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, args.out)
    print(render_markdown(data))
    return 0


def _free(device) -> None:
    import gc

    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vsslkit.commands.bench_gpu", description=__doc__.splitlines()[0])
    _add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
