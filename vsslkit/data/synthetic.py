"""The built-in synthetic dataset: 14 classes that only motion can tell apart.

Every appearance choice (shape, texture, colours, background, distractors, noise) is drawn the
same way for every class, and the frame is a torus (objects wrap at the borders), so neither a
single frame nor an object's position says anything about the class. Pairs of classes differ
only in direction or arrow of time (right/left, rotate CW/CCW, approach/recede,
accelerate/decelerate), which is what temporal pretext tasks are meant to learn.
This follows a design that worked in a CPU-budget experiment (TECH_NOTES, "A throw-away
experiment").

`render_video` gives frames in memory (notebooks); `make_synthetic` writes real H.264 files in
the UCF101 layout with three group-based splits, loadable with `open_dataset`.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vsslkit.atomic import write_text_atomic
from vsslkit.data.workers import die_with_parent
from vsslkit.errors import DiskFullError, is_disk_full

CLASSES: tuple[str, ...] = (
    "MoveRight", "MoveLeft", "MoveUp", "MoveDown", "RotateCW", "RotateCCW", "Approach", "Recede",
    "Bounce", "Accelerate", "Decelerate", "StopAndGo", "Zigzag", "Orbit",
)
SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross")
TEXTURES = ("stripes", "checker", "split")
GROUPS_PER_CLASS = 7
# Test groups of split k (1-based), as UCF101 tests groups 1-7 / 8-14 / 15-21.
TEST_GROUPS = {1: (1, 2), 2: (3, 4), 3: (5, 6)}
GENERATOR_VERSION = 2  # 2: smooth camera shake instead of per-frame ±1 px jitter
CAMERAS = ("smooth", "white")
_CARDINAL = {"right": (1.0, 0.0), "left": (-1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}


@dataclass(frozen=True)
class VideoParams:
    """Everything that determines one synthetic video (JSON-friendly; stored in synthetic.json)."""

    class_name: str
    num_frames: int
    size: int
    # appearance
    shape: str
    texture: str
    texture_angle: float
    texture_period: float
    colors: tuple[tuple[int, int, int], tuple[int, int, int]]
    radius: float
    background: tuple[int, int, int]
    noise_amplitude: float
    stripes: bool
    scene_seed: int
    num_distractors: int
    # motion
    speed: float  # px/frame (peak speed for speed profiles)
    spin: float  # degrees/frame (rotate classes), 0 otherwise
    direction: str  # a cardinal direction, or "" when the class has none
    start: tuple[float, float]
    angle0: float
    motion_seed: int
    camera: str = "smooth"  # "smooth" hand-held drift (default) or "white": version 1's per-frame ±1 px jitter


def _size_scale(size: int) -> float:
    return size / 64.0


def sample_params(
    class_name: str, rng: np.random.Generator, *, size: int = 64, num_frames: int | None = None,
    length_range: tuple[int, int] = (50, 200), scene_seed: int | None = None, camera: str = "smooth",
) -> VideoParams:
    """Draw one video's parameters. Appearance is drawn first and identically for every class.

    Without `num_frames` the length is uniform in `length_range` (default 2–8 s at 25 fps).
    `scene_seed` fixes the background (videos of one UCF-style group share a scene).
    """
    if class_name not in CLASSES:
        raise ValueError(f"unknown synthetic class {class_name!r}; choose from {', '.join(CLASSES)}")
    if camera not in CAMERAS:
        raise ValueError(f"unknown camera {camera!r}; choose from {', '.join(CAMERAS)}")
    k = _size_scale(size)
    first = rng.integers(30, 226, size=3)
    second = np.clip(255 - first + rng.integers(-40, 41, size=3), 20, 235)  # always contrasting
    colors = (first, second)
    appearance = {
        "shape": SHAPES[int(rng.integers(len(SHAPES)))],
        "texture": TEXTURES[int(rng.integers(len(TEXTURES)))],
        "texture_angle": float(rng.uniform(0, 180)),
        "texture_period": float(rng.uniform(5, 9) * k),
        "colors": (tuple(int(c) for c in colors[0]), tuple(int(c) for c in colors[1])),
        "radius": float(rng.uniform(9, 14) * k),
        "background": tuple(int(c) for c in rng.integers(20, 236, size=3)),
        "noise_amplitude": float(rng.uniform(5, 20)),
        "stripes": bool(rng.random() < 0.3),
        "scene_seed": int(rng.integers(2**31)) if scene_seed is None else int(scene_seed),
        "num_distractors": int(rng.integers(1, 3)),
    }
    n = int(rng.integers(length_range[0], length_range[1] + 1)) if num_frames is None else int(num_frames)
    if n < 2:
        raise ValueError(f"num_frames must be >= 2, got {n}")
    speed = float(rng.uniform(1.0, 2.3) * k)
    spin = float(rng.uniform(4.5, 10.5))
    direction = list(_CARDINAL)[int(rng.integers(4))]
    start = (float(rng.uniform(0, size)), float(rng.uniform(0, size)))
    angle0 = float(rng.uniform(0, 360))
    motion_seed = int(rng.integers(2**31))
    fixed = {"MoveRight": "right", "MoveLeft": "left", "MoveUp": "up", "MoveDown": "down"}
    if class_name in fixed:
        direction = fixed[class_name]
    elif class_name not in ("Bounce", "Accelerate", "Decelerate", "StopAndGo", "Zigzag"):
        direction = ""
    return VideoParams(
        class_name=class_name, num_frames=n, size=size, **appearance, speed=speed,
        spin=spin if class_name in ("RotateCW", "RotateCCW") else 0.0, direction=direction, start=start,
        angle0=angle0, motion_seed=motion_seed, camera=camera,
    )


# ---------------------------------------------------------------------------------------------
# Motion: per-frame centre (x, y), orientation (degrees, counter-clockwise) and scale.


def _sawtooth_speed(n: int, peak: float, rng: np.random.Generator) -> np.ndarray:
    """Speed ramping 0.15*peak → peak over cycles of 20–40 frames (then dropping back): accelerate."""
    out = np.empty(n)
    t = 0
    phase = int(rng.integers(0, 20))
    while t < n:
        period = int(rng.integers(20, 41))
        ramp = np.linspace(0.15, 1.0, period)[phase:] * peak
        out[t : t + len(ramp)] = ramp[: n - t]
        t += len(ramp)
        phase = 0
    return out


def trajectory(p: VideoParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(xy (T, 2), angle (T,), scale (T,))` of the main object; positions are not yet wrapped."""
    rng = np.random.default_rng(p.motion_seed)
    n = p.num_frames
    t = np.arange(n, dtype=np.float64)
    d = np.array(_CARDINAL.get(p.direction, (0.0, 0.0)))
    perp = np.array([-d[1], d[0]])
    angle = np.full(n, p.angle0)
    scale = np.ones(n)
    offset = np.zeros((n, 2))  # displacement from the start
    cls = p.class_name
    if cls in ("MoveRight", "MoveLeft", "MoveUp", "MoveDown"):
        offset = t[:, None] * p.speed * d
    elif cls in ("RotateCW", "RotateCCW"):
        # cv2 angles are counter-clockwise on screen; clockwise spins the other way.
        angle = p.angle0 + (p.spin if cls == "RotateCCW" else -p.spin) * t
    elif cls in ("Approach", "Recede"):
        # Log-size linear in time and centred on the video's midpoint: the set of sizes is the
        # same for both classes, so one frame cannot tell approach from recede.
        factor = float(rng.uniform(1.6, 2.1))
        rel = (t - (n - 1) / 2) / max((n - 1) / 2, 1)
        scale = factor ** (rel if cls == "Approach" else -rel)
    elif cls == "Bounce":
        half = int(rng.integers(8, 17))  # frames per leg
        phase = int(rng.integers(0, 2 * half))
        tri = np.abs(((t + phase) % (2 * half)) - half) - half / 2  # triangle wave, slope ±1
        offset = tri[:, None] * p.speed * d
    elif cls in ("Accelerate", "Decelerate"):
        steps = _sawtooth_speed(n, p.speed * 1.6, rng)[: n - 1]
        if cls == "Decelerate":  # the arrow-of-time twin of Accelerate
            steps = steps[::-1]
        offset = np.concatenate([[0.0], np.cumsum(steps)])[:, None] * d
    elif cls == "StopAndGo":
        speed = np.empty(n)
        i, moving = 0, bool(rng.integers(2))
        while i < n:
            length = int(rng.integers(8, 21) if moving else rng.integers(5, 13))
            speed[i : i + length] = p.speed * 1.3 if moving else 0.0
            i += length
            moving = not moving
        offset = np.concatenate([[0.0], np.cumsum(speed[:-1])])[:, None] * d
    elif cls == "Zigzag":
        amplitude = float(rng.uniform(4, 8) * _size_scale(p.size))
        period = int(rng.integers(12, 25))
        phase = float(rng.uniform(0, period))
        tri = 2 * np.abs(((t + phase) / period) % 1.0 - 0.5) * 2 - 1  # in [-1, 1]
        offset = (t * p.speed)[:, None] * d + (amplitude * tri)[:, None] * perp
    elif cls == "Orbit":
        radius = float(rng.uniform(8, 16) * _size_scale(p.size))
        omega = p.speed / radius * (1 if rng.random() < 0.5 else -1)
        phi = float(rng.uniform(0, 2 * np.pi))
        offset = radius * np.stack([np.cos(phi + omega * t) - np.cos(phi), np.sin(phi + omega * t) - np.sin(phi)], 1)
    xy = np.asarray(p.start)[None, :] + offset
    return xy, angle, scale


# ---------------------------------------------------------------------------------------------
# Rendering


def _shape_mask(shape: str, side: int, radius: float) -> np.ndarray:
    """Anti-aliased float mask in [0, 1] of `shape` with circumradius `radius` centred in a square."""
    sub = 4  # draw at 4x and shrink: smooth edges without per-pixel work
    big = np.zeros((side * sub, side * sub), np.uint8)
    c = side * sub / 2
    r = radius * sub

    def poly(points: np.ndarray) -> None:
        cv2.fillPoly(big, [np.round(points).astype(np.int32)], 255)

    def ngon(k: int, rot: float, rad: float = r) -> np.ndarray:
        a = rot + np.arange(k) * 2 * np.pi / k
        return np.stack([c + rad * np.cos(a), c + rad * np.sin(a)], 1)

    if shape == "circle":
        cv2.circle(big, (int(c), int(c)), int(r), 255, -1)
    elif shape == "square":
        poly(ngon(4, np.pi / 4))
    elif shape == "diamond":
        poly(np.array([[c - 0.65 * r, c], [c, c - r], [c + 0.65 * r, c], [c, c + r]]))
    elif shape == "triangle":
        poly(ngon(3, -np.pi / 2))
    elif shape == "star":
        outer, inner = ngon(5, -np.pi / 2), ngon(5, -np.pi / 2 + np.pi / 5, r * 0.45)
        poly(np.stack([outer, inner], 1).reshape(-1, 2))
    elif shape == "cross":
        w = r * 0.38
        cv2.rectangle(big, (int(c - r), int(c - w)), (int(c + r), int(c + w)), 255, -1)
        cv2.rectangle(big, (int(c - w), int(c - r)), (int(c + w), int(c + r)), 255, -1)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return cv2.resize(big, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _texture(p: VideoParams, side: int) -> np.ndarray:
    """Oriented two-colour texture (so rotation is visible), float32 (side, side, 3)."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) - side / 2
    a = np.deg2rad(p.texture_angle)
    u = xx * np.cos(a) + yy * np.sin(a)
    v = -xx * np.sin(a) + yy * np.cos(a)
    if p.texture == "stripes":
        sel = np.floor(u / p.texture_period) % 2 == 0
    elif p.texture == "checker":
        sel = (np.floor(u / p.texture_period) + np.floor(v / p.texture_period)) % 2 == 0
    else:  # split: two halves, plus a thin bar so 180° turns are visible too
        sel = (u > 0) | ((np.abs(v) < p.texture_period / 3) & (u > -p.radius))
    c0, c1 = (np.asarray(c, np.float32) for c in p.colors)
    return np.where(sel[..., None], c0, c1)


def _background(p: VideoParams) -> np.ndarray:
    """Static scene: colour + smooth noise (+ stripes); drawn from `scene_seed` only."""
    rng = np.random.default_rng(p.scene_seed)
    s = p.size
    coarse = rng.uniform(-1, 1, size=(max(2, s // 8), max(2, s // 8), 3)).astype(np.float32)
    noise = cv2.resize(coarse, (s, s), interpolation=cv2.INTER_CUBIC)
    bg = np.asarray(p.background, np.float32) + p.noise_amplitude * noise
    if p.stripes:
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
        a = rng.uniform(0, np.pi)
        period = rng.uniform(6, 16) * _size_scale(s)
        wave = np.sin(2 * np.pi * (xx * np.cos(a) + yy * np.sin(a)) / period)
        bg += rng.uniform(10, 25) * wave[..., None]
    return bg


def _paste(frame: np.ndarray, sprite: np.ndarray, alpha: np.ndarray, cx: float, cy: float) -> None:
    """Alpha-blend a sprite centred at integer-rounded (cx, cy) onto a torus frame, in place."""
    h, w = frame.shape[:2]
    sh, sw = alpha.shape
    top, left = int(np.floor(cy)) - sh // 2, int(np.floor(cx)) - sw // 2
    rows = (top + np.arange(sh)) % h
    cols = (left + np.arange(sw)) % w
    region = frame[np.ix_(rows, cols)]
    a = alpha[..., None]
    frame[np.ix_(rows, cols)] = region * (1 - a) + sprite * a


def camera_shake(p: VideoParams, *, amplitude: float = 0.8, smoothness: float = 4.0) -> np.ndarray:
    """Sub-pixel camera offsets `(T, 2)` (x, y): a smooth hand-held wobble, std `amplitude` px.

    Why smooth: version 1 shook the camera by an independent ±1 px every frame. Such white
    jitter moves the whole frame by up to 2 px between *any* two frames, whatever their distance
    in time, so it drowned the very thing speed pretext tasks measure (how far things move per
    sampled step): a probe on motion energy could not place a speed change above chance. A real
    hand-held camera drifts slowly (`smoothness` = Gaussian time constant in frames), so its
    displacement grows with the frame gap like every other motion. `p.camera == "white"` brings
    the old jitter back (integer offsets in {-1, 0, 1}) to show what it hides.
    """
    rng = np.random.default_rng(p.motion_seed + 2)
    n, k = p.num_frames, _size_scale(p.size)
    if p.camera == "white":
        return rng.integers(-1, 2, size=(n, 2)).astype(np.float64)
    pad = int(4 * smoothness) + 1
    noise = rng.normal(size=(n + 2 * pad, 2)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (1, 2 * pad + 1), smoothness).astype(np.float64)[pad : n + pad]
    smooth -= smooth.mean(0)
    smooth /= max(float(smooth.std()), 1e-6)
    return smooth * amplitude * k


def render(p: VideoParams) -> np.ndarray:
    """Frames `(T, size, size, 3)` uint8 for parameters `p` (deterministic)."""
    rng = np.random.default_rng(p.motion_seed + 1)
    s, n = p.size, p.num_frames
    xy, angle, scale = trajectory(p)
    max_r = p.radius * float(scale.max())
    side = min(int(np.ceil(2 * max_r * 1.15)) + 4, s)  # sprite canvas; never larger than the frame
    side += side % 2
    base_side = int(np.ceil(2 * p.radius * 1.5)) + 4
    mask = _shape_mask(p.shape, base_side, p.radius)
    tex = _texture(p, base_side)
    rgba = np.dstack([tex * mask[..., None], mask])  # premultiplied colour + alpha

    # distractors: small discs on smoothed random walks (time-symmetric in distribution)
    k = _size_scale(s)
    dist = []
    for _ in range(p.num_distractors):
        steps = rng.normal(0, 0.6 * k, size=(n + 20, 2))
        vel = cv2.GaussianBlur(steps.astype(np.float32), (1, 21), 5).astype(np.float64)[10 : n + 10]
        pos = rng.uniform(0, s, size=2) + np.cumsum(vel, 0)
        r = float(rng.uniform(2.0, 4.0) * k)
        dside = int(np.ceil(2 * r)) + 3
        dside += dside % 2
        dmask = _shape_mask("circle" if rng.random() < 0.5 else "square", dside, r)
        dcolor = rng.integers(30, 226, size=3).astype(np.float32)
        dist.append((pos, dmask, np.broadcast_to(dcolor, (*dmask.shape, 3))))

    bg = _background(p)
    shake = camera_shake(p)
    frames = np.empty((n, s, s, 3), np.float32)
    for i in range(n):
        frame = bg.copy()
        for pos, dmask, dcol in dist:
            _paste(frame, dcol, dmask, pos[i, 0], pos[i, 1])
        cx, cy = xy[i]
        m = cv2.getRotationMatrix2D((base_side / 2, base_side / 2), float(angle[i]), float(scale[i]))
        m[:, 2] += side / 2 - base_side / 2 + np.array([cx % 1.0, cy % 1.0])  # sub-pixel position
        warped = cv2.warpAffine(rgba, m, (side, side), flags=cv2.INTER_LINEAR, borderValue=0)
        alpha = warped[..., 3]
        colour = warped[..., :3] / np.maximum(alpha, 1e-6)[..., None]
        _paste(frame, colour, alpha, np.floor(cx), np.floor(cy))
        move = np.float32([[1, 0, shake[i, 0]], [0, 1, shake[i, 1]]])
        frames[i] = cv2.warpAffine(frame, move, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    frames += rng.normal(0.0, 6.0, size=frames.shape).astype(np.float32)
    return np.clip(frames + 0.5, 0, 255).astype(np.uint8)


def render_video(
    class_name: str, rng: np.random.Generator, *, size: int = 64, num_frames: int | None = None
) -> np.ndarray:
    """One synthetic video `(T, size, size, 3)` uint8, in memory (for notebooks and tests)."""
    return render(sample_params(class_name, rng, size=size, num_frames=num_frames))


# ---------------------------------------------------------------------------------------------
# Writing the dataset


def video_name(class_name: str, group: int, clip: int) -> str:
    return f"v_{class_name}_g{group:02d}_c{clip:02d}"


def _video_plan(videos_per_class: int) -> list[tuple[int, str, int, int]]:
    """(video id, class, group, clip) for every video; videos are dealt round-robin into groups."""
    plan = []
    for c, cls in enumerate(CLASSES):
        for j in range(videos_per_class):
            plan.append((c * videos_per_class + j, cls, j % GROUPS_PER_CLASS + 1, j // GROUPS_PER_CLASS + 1))
    return plan


def _make_one(job: tuple) -> dict[str, Any]:
    """Render and write one video; deterministic from (seed, class, group, clip)."""
    out_dir, seed, size, cls, group, clip, fps, video_id, length_range, camera = job
    from vsslkit.data.writer import write_video

    cv2.setNumThreads(1)
    c = CLASSES.index(cls)
    scene_seed = int(np.random.default_rng([seed, c, group]).integers(2**31))  # a group shares its scene
    rng = np.random.default_rng([seed, c, group, clip])
    p = sample_params(cls, rng, size=size, length_range=length_range, scene_seed=scene_seed, camera=camera)
    rel = Path("videos") / cls / f"{video_name(cls, group, clip)}.mp4"
    path = Path(out_dir) / rel
    if not path.exists():  # files are written atomically: an existing one is complete
        write_video(path, render(p), fps=fps, gop=25)
    info = asdict(p)
    info.update(path=rel.as_posix(), group=group, clip=clip, video_id=video_id)
    return info


def _request(videos_per_class: int, seed: int, size: int, fps: int, length_range: tuple[int, int],
             camera: str) -> dict[str, Any]:
    extra = {} if camera == "smooth" else {"camera": camera}  # the default keeps earlier v2 requests valid
    return {**extra,
        "generator_version": GENERATOR_VERSION, "videos_per_class": videos_per_class, "seed": seed,
        "size": size, "fps": fps, "length_range": list(length_range), "classes": list(CLASSES),
        "groups_per_class": GROUPS_PER_CLASS,
        "test_groups": {str(k): list(v) for k, v in TEST_GROUPS.items()},
    }


def make_synthetic(
    out_dir: str | os.PathLike, *, videos_per_class: int = 43, seed: int = 0, size: int = 64, fps: int = 25,
    length_range: tuple[int, int] = (50, 200), workers: int = 2, progress: bool = True, camera: str = "smooth",
) -> Path:
    """Write the synthetic dataset in the UCF101 layout under `out_dir` and return `out_dir`.

    Idempotent: when `out_dir/synthetic.json` records the same request, nothing is done.
    An interrupted run resumes (finished videos are kept). The result does not depend on
    `workers`: each video is a function of (seed, class, group, clip).
    """
    if videos_per_class < GROUPS_PER_CLASS:
        raise ValueError(f"videos_per_class must be >= {GROUPS_PER_CLASS} (one per group), got {videos_per_class}")
    if size < 16 or size % 2:
        raise ValueError(f"size must be an even number >= 16, got {size}")
    if not 2 <= length_range[0] <= length_range[1]:
        raise ValueError(f"length_range must be (min, max) frames with 2 <= min <= max, got {length_range}")
    out = Path(out_dir).expanduser().resolve()
    if camera not in CAMERAS:
        raise ValueError(f"unknown camera {camera!r}; choose from {', '.join(CAMERAS)}")
    request = _request(videos_per_class, seed, size, fps, tuple(length_range), camera)
    meta_path, partial_path = out / "synthetic.json", out / "synthetic.partial.json"
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        if old.get("request") == request and all((out / v["path"]).is_file() for v in old.get("videos", [])):
            return out
        _remove_videos(out, old)  # a different request: drop the old set before writing the new one
        meta_path.unlink()
    elif (out / "videos").exists() and not (partial_path.is_file() and json.loads(partial_path.read_text()) == request):
        raise FileExistsError(f"{out}: has a videos/ folder that is not an unfinished synthetic set with these "
                              "parameters; choose another --out or delete it")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    jobs = [(str(out), seed, size, cls, g, k, fps, vid, tuple(length_range), camera)
            for vid, cls, g, k in _video_plan(videos_per_class)]
    try:
        write_text_atomic(partial_path, json.dumps(request))
        videos = _run_jobs(jobs, workers, progress)
        _write_splits(out, videos)
        meta = {"request": request, "seconds": round(time.perf_counter() - started, 1), "videos": videos}
        write_text_atomic(meta_path, json.dumps(meta, indent=1))  # the commit: the set is complete
    except (OSError, DiskFullError) as exc:
        if is_disk_full(exc):  # videos and split files already written are whole; synthetic.json is not there
            raise DiskFullError(out, "the synthetic dataset (finished videos are kept)") from exc
        raise
    partial_path.unlink()
    return out


def _run_jobs(jobs: list[tuple], workers: int, progress: bool) -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc="synthetic videos", unit="video", disable=not progress)
    results: list[dict[str, Any]] = []
    try:
        if workers <= 1:
            for job in jobs:
                results.append(_make_one(job))
                bar.update()
        else:
            # spawn: safe even when the caller already started torch/OpenMP threads
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                     initializer=die_with_parent) as pool:
                for info in pool.map(_make_one, jobs, chunksize=4):
                    results.append(info)
                    bar.update()
    finally:
        bar.close()
    return results


def _remove_videos(out: Path, meta: dict[str, Any]) -> None:
    for v in meta.get("videos", []):
        (out / v["path"]).unlink(missing_ok=True)


def _write_splits(out: Path, videos: list[dict[str, Any]]) -> None:
    """classInd.txt and trainlist/testlist 01–03 in UCF101's exact format, each written atomically."""
    split_dir = out / "ucfTrainTestlist"
    split_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(split_dir / "classInd.txt", "".join(f"{i + 1} {c}\n" for i, c in enumerate(CLASSES)))
    for k, test_groups in TEST_GROUPS.items():
        train_lines, test_lines = [], []
        for v in videos:
            rel = Path(v["path"]).relative_to("videos").as_posix()
            if v["group"] in test_groups:
                test_lines.append(f"{rel}\n")
            else:
                train_lines.append(f"{rel} {CLASSES.index(v['class_name']) + 1}\n")
        write_text_atomic(split_dir / f"trainlist0{k}.txt", "".join(train_lines))
        write_text_atomic(split_dir / f"testlist0{k}.txt", "".join(test_lines))


def load_metadata(root: str | os.PathLike) -> dict[str, Any]:
    """The generation record (`synthetic.json`) of a synthetic dataset."""
    path = Path(root) / "synthetic.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a finished synthetic dataset (no synthetic.json)")
    return json.loads(path.read_text())
