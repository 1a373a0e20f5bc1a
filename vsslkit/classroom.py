"""Helpers the teaching notebooks share, so each notebook stays a few calls and pictures.

- `setup()`: the first cell of the training notebooks (threads, mode, course data, a runs folder).
- `fast_mode()`: notebooks run small by default (`VSSLKIT_FAST=1`, CI and a first read);
  `VSSLKIT_FAST=0` is the full classroom run.
- `course_dataset()`: the built-in synthetic dataset, generated once, with its frame store and
  frame counts; a second call only checks the files (seconds), so every notebook can call it.
- `real_video_dir()`: the folder of real test videos, or None (notebooks then skip that cell).
- `quick_classifier()`: `train_classifier` with classroom defaults (tiny R3D, residual input).
- `object_mask()` / `probe_clip()` / `model_input()`: ground truth and model input for CAM.
- `compact_images()` / `picture()` / `difference_frames()`: pictures that keep notebooks small.
- `arrow_of_time_clips()`: one clip rendered by synthetic versions 2 and 3 (show it forward and
  backward with `viz.plots.forward_backward_strips`).
"""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from vsslkit.data.datasets import VideoIndex, open_dataset
from vsslkit.data.store import FrameStore, default_store_dir
from vsslkit.data.synthetic import (
    GENERATOR_VERSION,
    VideoParams,
    camera_shake,
    make_synthetic,
    render,
    sample_params,
    trajectory,
)

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


def default_course_root(*, fast: bool, seed: int = 0, version: int = GENERATOR_VERSION) -> Path:
    """`$VSSLKIT_DATA/course-fast-v3` (or `course-full-v3`), `$VSSLKIT_DATA` defaulting to `~/.cache/vsslkit`.

    Fast and full sets live side by side, so switching modes never regenerates the other one;
    likewise each generator version has its own folder (`-v3`, the default; version 2, the time-symmetric
    control, keeps the plain name its caches had when it was the default).
    """
    base = Path(os.environ.get("VSSLKIT_DATA", Path.home() / ".cache" / "vsslkit")).expanduser()
    name = ("course-fast" if fast else "course-full") + ("" if version == 2 else f"-v{version}")
    return base / (name if seed == 0 else f"{name}-seed{seed}")


def course_dataset(
    root: str | os.PathLike | None = None, *, fast: bool | None = None, seed: int = 0,
    store_root: str | os.PathLike | None = None, workers: int = 2, progress: bool = False,
    version: int = GENERATOR_VERSION,
) -> CourseData:
    """Build the synthetic dataset at `root` if missing, store its frames, and load split 1.

    `workers` processes generate the videos (spawned: call it from a notebook or under
    `if __name__ == "__main__":`). Idempotent: `make_synthetic` returns at once when `root` already holds this request, and the
    frame store only re-checks its records. The store defaults to the kit's shared one
    (`$VSSLKIT_STORE`, see `default_store_dir`) at short side 64, so the CLI reuses it. `version` is
    the synthetic generator version (2: time-symmetric, 3: + irreversible physics); a `root` holding
    another version is regenerated (the store notices the new files).
    """
    fast = fast_mode() if fast is None else fast
    root = Path(root).expanduser() if root is not None else default_course_root(fast=fast, seed=seed, version=version)
    videos_per_class = FAST_VIDEOS_PER_CLASS if fast else FULL_VIDEOS_PER_CLASS
    make_synthetic(root, videos_per_class=videos_per_class, seed=seed, workers=workers, progress=progress,
                   version=version)
    store = FrameStore(store_root if store_root is not None else default_store_dir(), short_side=SHORT_SIDE)
    # One process: 64x64 videos decode in milliseconds, far less than spawning workers costs.
    train, skipped_train = open_dataset(root, split=1, subset="train").with_frame_counts(store, progress=progress)
    test, skipped_test = open_dataset(root, split=1, subset="test").with_frame_counts(store, progress=progress)
    return CourseData(root=Path(root).resolve(), train=train, test=test, store=store,
                      class_names=list(train.class_names), fast=fast, skipped=skipped_train + skipped_test)


class Setup(NamedTuple):
    """What a training notebook's first cell hands the rest of it (unpacks as `fast, course, runs`)."""

    fast: bool
    course: CourseData
    runs: Path  # a fresh temporary folder for this notebook's checkpoints, removed when the kernel exits


def setup(*, threads: int = 2) -> Setup:
    """The setup cell of the training notebooks (02, 03, 04, 06), in one call.

    Caps torch at `threads` CPU threads (the classroom machine is shared), reads the mode
    (`fast_mode()`), builds or reuses the course dataset of that mode, makes an empty run folder
    and prints "fast mode" / "full mode", the line nbval sees.
    """
    torch.set_num_threads(threads)
    fast = fast_mode()
    course = course_dataset(fast=fast)
    runs = Path(tempfile.mkdtemp(prefix="vsslkit-notebook-"))
    # The folder is scratch for this kernel: remove it when the kernel exits, so that re-running the
    # notebooks (nbval, the browser test, a class of students) does not fill the disk with checkpoints.
    atexit.register(shutil.rmtree, runs, ignore_errors=True)
    print("fast mode" if fast else "full mode")
    return Setup(fast, course, runs)


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
    circumradius, moved with the camera shake, plus `margin` pixels for anti-aliased edges. It
    ignores the small distractors on purpose: they are part of the "background" for CAM scores.
    """
    xy, _, scale = trajectory(params)
    xy = xy + camera_shake(params)
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


def probe_clip(class_name: str, *, seed: int, num_frames: int = 17) -> tuple[np.ndarray, np.ndarray]:
    """A fresh synthetic clip and its object mask aligned with the residual input.

    Returns frames `(T, 64, 64, 3)` and a mask `(T-1, 64, 64)`: difference t spans frames t and
    t+1, so the object counts where it is in either frame.
    """
    params = sample_params(class_name, np.random.default_rng(seed), num_frames=num_frames)
    mask = object_mask(params)
    return render(params), mask[1:] | mask[:-1]


def arrow_of_time_clips(class_name: str = "MoveRight", *, seed: int = 0, num_frames: int = 10, stride: int = 2,
                        size: int = 64) -> dict[str, np.ndarray]:
    """The same synthetic clip rendered by generator versions 2 and 3: `{"version 2": frames, "version 3": frames}`.

    Same class, scene, object and motion (the parameters differ only in `version`), `num_frames`
    frames every `stride` frames. Show them with `viz.plots.forward_backward_strips`.
    """
    clips = {}
    for version in (2, 3):
        params = sample_params(class_name, np.random.default_rng(seed), size=size,
                               num_frames=(num_frames - 1) * stride + 1, version=version)
        clips[f"version {version}"] = render(params)[::stride]
    return clips


def difference_frames(frames: np.ndarray, *, gain: float = 4.0) -> np.ndarray:
    """|frame t+1 - frame t| as grey uint8 `(T-1, H, W, 3)`, amplified by `gain` to be visible."""
    frames = np.asarray(frames, dtype=np.int16)
    diff = np.abs(np.diff(frames, axis=0)).mean(-1) * gain
    return np.repeat(np.clip(diff, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    import cv2

    image = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[..., ::-1])  # RGB -> BGR for OpenCV
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"could not encode an image of shape {image.shape} as JPEG")
    return buf.tobytes()


def picture(image: np.ndarray, *, quality: int = 85):
    """An `IPython.display.Image` (JPEG) of a uint8 RGB image such as a film strip.

    JPEG, not PNG: the synthetic frames carry pixel noise that PNG cannot compress, and a
    notebook is committed with its pictures.
    """
    from IPython.display import Image

    return Image(data=_jpeg(image, quality), format="jpeg")


def compact_images(fig, *, quality: int = 85):
    """Replace every `go.Image` pixel array (also in animation frames) by a JPEG data URI.

    A plotly figure stores images as nested number lists; as JPEG the same picture is 10-50x
    smaller, which keeps notebooks with their outputs small enough to commit.
    """

    def shrink(trace) -> None:
        if trace.type == "image" and trace.z is not None:
            data = base64.b64encode(_jpeg(np.asarray(trace.z, dtype=np.uint8), quality)).decode("ascii")
            trace.z = None
            trace.source = "data:image/jpeg;base64," + data

    for trace in fig.data:
        shrink(trace)
    for frame in fig.frames or ():
        for trace in frame.data:
            shrink(trace)
    return fig


def cam_concentrations(model: torch.nn.Module, class_names: list[str], *, seeds: range | list[int] = range(100, 106),
                       probe_classes: tuple[str, ...] = ("MoveRight", "MoveUp", "RotateCW", "Bounce", "Zigzag", "Orbit"),
                       num_frames: int = 9) -> dict[str, list[float]]:
    """Heat concentration (object / background) of the activation map, GradCAM and HiResCAM.

    One fresh clip per probe class (seeded), residual input, target = the clip's true class;
    grad-cam maps target the last stage ("pre_pool"). `model` is a `VideoClassifier`.
    """
    from vsslkit.eval import cam

    scores: dict[str, list[float]] = {"activation map": [], "gradcam": [], "hirescam": []}
    layer = model.backbone.layer_module("pre_pool")
    for name, seed in zip(probe_classes, seeds):
        frames, mask = probe_clip(name, seed=seed, num_frames=num_frames)
        clip = model_input(frames)
        target = class_names.index(name)
        scores["activation map"].append(cam.heat_concentration(cam.activation_map(model.backbone, clip), mask))
        for method in ("gradcam", "hirescam"):
            heat = cam.gradient_cam(model, clip, layer, method=method, target_class=target)
            scores[method].append(cam.heat_concentration(heat, mask))
    return scores


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
    batch_size: int = 8, lr: float = 0.05, residual: bool = True, flip: bool = False, seed: int = 0,
    out_dir: str | os.PathLike | None = None, progress: bool = False,
) -> QuickClassifier:
    """Train a small supervised classifier on `course.train` for `steps` steps (CPU minutes).

    A thin wrapper over `train_classifier` with classroom defaults: a slim R3D on 64x64 residual
    clips (RGB input learns nothing in this budget; TECH_NOTES). Without `out_dir` the run's
    files go to a temporary folder that is removed afterwards (the model is returned in memory).
    `flip` stays off by default: a horizontal flip swaps MoveRight/MoveLeft and RotateCW/CCW, so
    it would teach wrong labels on this dataset.
    """
    from vsslkit.models import build_backbone
    from vsslkit.train.supervised import ClassifierConfig, train_classifier

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    torch.manual_seed(seed)
    net = build_backbone(backbone)
    config = ClassifierConfig(backbone=backbone, width=1.0, num_classes=len(course.class_names), clip_len=clip_len,
                              stride=stride, size=SHORT_SIDE, residual=residual, freeze_backbone=False, dropout=0.0,
                              class_names=tuple(course.class_names), flip=flip)
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


def committed_result_summary(path: str | os.PathLike | None = None) -> str:
    """The committed full-recipe comparison (`docs/results/quickstart_3seeds.json`) as markdown lines.

    Why: a notebook's closing text may discuss the full CPU recipe, but every number it quotes must
    be printed by the notebook itself; this reads them from the committed result file instead of
    the prose carrying copies that drift. Says so plainly when the file is not there (an install
    without the repository's docs).
    """
    import json

    from vsslkit.experiments.report import fmt

    path = Path(path) if path is not None else REPO / "docs" / "results" / "quickstart_3seeds.json"
    if not path.is_file():
        return f"(no committed result at {path}; run `vsslkit quickstart --seeds 3` to measure it)"
    data = json.loads(path.read_text())
    protocol, runs = data["protocol"], data["runs"]
    fraction = protocol["downstream"]["label_fraction"]
    labelled = {r["finetune"]["labelled_videos"] for seeds in runs.values() for r in seeds}
    lines = [(f"Committed full CPU recipe (`{path.name}`): {len(protocol['seeds'])} paired seeds, "
              f"{protocol['pretrain_steps']} pretraining steps, {fraction:.0%} labels = "
              f"{', '.join(map(str, sorted(labelled)))} labelled videos of {protocol['train_videos']}, "
              f"{protocol['test_videos']} test videos.")]
    for section, key, what in (("linear_probe", "video_accuracy", "linear probe video accuracy"),
                               ("retrieval", "R@1", "frozen R@1"),
                               ("finetune", "video_accuracy", "fine-tuned video accuracy")):
        values = " · ".join(f"{name} {fmt([r[section][key] for r in seeds])} %" for name, seeds in runs.items())
        lines.append(f"- {what}: {values}")
    return "\n".join(lines)


def committed_from_scratch_table(path: str | os.PathLike | None = None) -> str:
    """The committed `vsslkit reproduce from-scratch` table (`docs/results/from_scratch_reproduce.json`,
    rendered by the reproduction's own `table_from_results`), or one line saying it is not committed yet.

    Why here and not in `viz`: the renderer lives in `experiments`, a layer above `viz`."""
    path = Path(path) if path is not None else REPO / "docs" / "results" / "from_scratch_reproduce.json"
    if not path.is_file():
        return f"`{path.name}`: not committed yet (the three-seed table of `vsslkit reproduce from-scratch`)"
    from vsslkit.experiments.from_scratch import table_from_results

    return table_from_results(path)
