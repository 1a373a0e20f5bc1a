"""Helpers the teaching notebooks share, so each notebook stays a few calls and pictures.

- `fast_mode()`: notebooks run small by default (`VSSLKIT_FAST=1`, CI and a first read);
  `VSSLKIT_FAST=0` is the full classroom run.
- `course_dataset()`: the built-in synthetic dataset, generated once, with its frame store and
  frame counts; a second call only checks the files (seconds), so every notebook can call it.
- `real_video_dir()`: the folder of real test videos, or None (notebooks then skip that cell).
- `quick_classifier()`: `train_classifier` with classroom defaults (tiny R3D, residual input).
- `object_mask()` / `model_input()`: ground truth and model input for the CAM notebook.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vsslkit.data.datasets import VideoIndex, open_dataset
from vsslkit.data.store import FrameStore, default_store_dir
from vsslkit.data.synthetic import VideoParams, make_synthetic, trajectory

FAST_VIDEOS_PER_CLASS = 8  # 112 videos in ~15 s; split 1: 5 train / 3 test per class
FULL_VIDEOS_PER_CLASS = 43  # make_synthetic's default (602 videos, about UCF101's ratio per class)
SHORT_SIDE = 64  # the synthetic videos are 64x64; a larger short side would only upscale them
REPO = Path(__file__).resolve().parents[1]


def fast_mode() -> bool:
    """True unless `VSSLKIT_FAST` is "0" / "false" / "no" / "off" (fast is the safe default)."""
    value = os.environ.get("VSSLKIT_FAST", "1").strip().lower()
    if value in ("1", "true", "yes", "on", ""):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"VSSLKIT_FAST must be 1 (fast) or 0 (full classroom run), got {value!r}")


@dataclass
class CourseData:
    """The course dataset: split-1 train/test indexes (with frame counts) and the store they read."""

    root: Path
    train: VideoIndex
    test: VideoIndex
    store: FrameStore
    class_names: list[str]
    fast: bool
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def describe(self) -> str:
        """Stable text (no paths, no timings): what a notebook prints and nbval compares."""
        train_frames, test_frames = sum(self.train.num_frames or []), sum(self.test.num_frames or [])
        lines = [
            (f"synthetic course dataset ({'fast' if self.fast else 'full'} mode): {len(self.class_names)} classes, "
             f"{len(self.train)} train videos ({train_frames} frames), {len(self.test)} test videos ({test_frames} frames)"),
            f"classes: {', '.join(self.class_names)}",
        ]
        if self.skipped:
            lines.append(f"{len(self.skipped)} unreadable videos skipped")
        return "\n".join(lines)


def default_course_root(*, fast: bool, seed: int = 0) -> Path:
    """`$VSSLKIT_DATA/course-fast` (or `course-full`), `$VSSLKIT_DATA` defaulting to `~/.cache/vsslkit`.

    Fast and full sets live side by side, so switching modes never regenerates the other one.
    """
    base = Path(os.environ.get("VSSLKIT_DATA", Path.home() / ".cache" / "vsslkit")).expanduser()
    name = "course-fast" if fast else "course-full"
    return base / (name if seed == 0 else f"{name}-seed{seed}")


def course_dataset(
    root: str | os.PathLike | None = None, *, fast: bool | None = None, seed: int = 0,
    store_root: str | os.PathLike | None = None, workers: int = 2, progress: bool = False,
) -> CourseData:
    """Build the synthetic dataset at `root` if missing, store its frames, and load split 1.

    `workers` processes generate the videos (spawned: call it from a notebook or under
    `if __name__ == "__main__":`). Idempotent: `make_synthetic` returns at once when `root` already holds this request, and the
    frame store only re-checks its records. The store defaults to the kit's shared one
    (`$VSSLKIT_STORE`, see `default_store_dir`) at short side 64, so the CLI reuses it.
    """
    fast = fast_mode() if fast is None else fast
    root = Path(root).expanduser() if root is not None else default_course_root(fast=fast, seed=seed)
    videos_per_class = FAST_VIDEOS_PER_CLASS if fast else FULL_VIDEOS_PER_CLASS
    make_synthetic(root, videos_per_class=videos_per_class, seed=seed, workers=workers, progress=progress)
    store = FrameStore(store_root if store_root is not None else default_store_dir(), short_side=SHORT_SIDE)
    # One process: 64x64 videos decode in milliseconds, far less than spawning workers costs.
    train, skipped_train = open_dataset(root, split=1, subset="train").with_frame_counts(store, progress=progress)
    test, skipped_test = open_dataset(root, split=1, subset="test").with_frame_counts(store, progress=progress)
    return CourseData(root=Path(root).resolve(), train=train, test=test, store=store,
                      class_names=list(train.class_names), fast=fast, skipped=skipped_train + skipped_test)


def real_video_dir() -> Path | None:
    """`$VSSLKIT_REAL_VIDEOS` or `<repo>/../shared/real_videos`; None when it has no manifest.csv."""
    folder = Path(os.environ.get("VSSLKIT_REAL_VIDEOS", REPO / ".." / "shared" / "real_videos")).expanduser()
    return folder.resolve() if (folder / "manifest.csv").is_file() else None


def model_input(frames: np.ndarray, *, residual: bool = True) -> torch.Tensor:
    """uint8 frames `(T, H, W, 3)` → the normalised `(1, 3, T', H, W)` clip the classroom models take.

    With `residual` the T frames become T-1 differences (the input the classroom models learn
    from on a CPU budget); the difference i belongs to frames i and i+1.
    """
    from vsslkit.data.transforms import residual_frames, to_float_clips

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    x = to_float_clips(torch.from_numpy(np.ascontiguousarray(frames))[None])
    return residual_frames(x) if residual else x


def object_mask(params: VideoParams, *, margin: float = 1.5) -> np.ndarray:
    """Boolean `(T, size, size)` disc around the main object of a synthetic video, on the torus.

    Built from the renderer's own trajectory (centre and scale per frame) and the object's
    circumradius, plus `margin` pixels for the ±1 px camera jitter and anti-aliased edges. It
    ignores the small distractors on purpose: they are part of the "background" for CAM scores.
    """
    xy, _, scale = trajectory(params)
    s = params.size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    masks = np.empty((params.num_frames, s, s), dtype=bool)
    for t in range(params.num_frames):
        cx, cy = xy[t, 0] % s, xy[t, 1] % s
        dx = np.abs(xx - cx)
        dy = np.abs(yy - cy)
        dx, dy = np.minimum(dx, s - dx), np.minimum(dy, s - dy)  # distances on the torus
        masks[t] = dx**2 + dy**2 <= (params.radius * scale[t] + margin) ** 2
    return masks


@dataclass(frozen=True)
class QuickClassifier:
    """A classifier trained by `quick_classifier` and what its input looks like."""

    model: torch.nn.Module
    clip_len: int
    residual: bool
    steps: int
    final_loss: float
    seconds: float


def quick_classifier(
    course: CourseData, *, steps: int, backbone: str = "tiny_r3d", clip_len: int = 8, stride: int = 1,
    batch_size: int = 8, lr: float = 0.05, residual: bool = True, seed: int = 0,
    out_dir: str | os.PathLike | None = None, progress: bool = False,
) -> QuickClassifier:
    """Train a small supervised classifier on `course.train` for `steps` steps (CPU minutes).

    A thin wrapper over `train_classifier` with classroom defaults: a slim R3D on 64x64 residual
    clips (RGB input learns nothing in this budget; TECH_NOTES). Without `out_dir` the run's
    files go to a temporary folder that is removed afterwards (the model is returned in memory).
    The train-time augmentation includes horizontal flips, which swap MoveRight/MoveLeft and
    RotateCW/CCW on this dataset; `train_classifier` has no switch for it yet.
    """
    from vsslkit.models import build_backbone
    from vsslkit.train.supervised import ClassifierConfig, train_classifier

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    torch.manual_seed(seed)
    net = build_backbone(backbone)
    config = ClassifierConfig(backbone=backbone, width=1.0, num_classes=len(course.class_names), clip_len=clip_len,
                              stride=stride, size=SHORT_SIDE, residual=residual, freeze_backbone=False, dropout=0.0,
                              class_names=tuple(course.class_names))
    train = course.train
    with tempfile.TemporaryDirectory(prefix="vsslkit-quick-") as tmp:
        model, result = train_classifier(
            backbone=net, config=config, paths=train.paths, labels=train.labels, num_frames=train.num_frames,
            source=course.store, out_dir=out_dir if out_dir is not None else tmp, batch_size=batch_size,
            max_steps=steps, epochs=10**6, lr=lr, seed=seed, progress=progress, resume=out_dir is not None,
            checkpoint_every=None)
    model.eval()
    return QuickClassifier(model=model, clip_len=clip_len, residual=residual, steps=result.steps,
                           final_loss=result.final_loss, seconds=result.seconds)
