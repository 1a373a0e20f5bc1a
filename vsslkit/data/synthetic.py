"""The built-in synthetic dataset: 14 classes that only motion can tell apart.

Every appearance choice (shape, texture, colours, background, distractors, noise) is drawn the
same way for every class, and the frame is a torus (objects wrap at the borders), so neither a
single frame nor an object's position says anything about the class. Pairs of classes differ
only in direction or arrow of time (right/left, rotate CW/CCW, approach/recede,
accelerate/decelerate), which is what temporal pretext tasks are meant to learn.
This follows a design that worked in a CPU-budget experiment (TECH_NOTES, "A throw-away
experiment").

Versions (`version=`, `--version`): 2 is time-reversal symmetric: every class played backwards
is another class or itself, so no observer can tell the direction of one clip (a control for
arrow-of-time tasks). 3 adds irreversible physics behind the main object in every scene, the
same for every class (see `IrreversibleScene`), so the direction of time becomes visible while
the class is still decided by the main object's motion alone. Version 2 renders as it did before
version 3 existed (bit-identically on one CPU; another CPU's OpenCV SIMD path can round the
background's float bicubic resize differently, a few pixels in a million one grey level apart).

`render_video` gives frames in memory (notebooks); `make_synthetic` writes real H.264 files in
the UCF101 layout with three group-based splits, loadable with `open_dataset`.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
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
GENERATOR_VERSION = 3  # the default version (3: + irreversible physics; 2: the time-symmetric control)
VERSIONS = (2, 3)  # 3: + irreversible background processes (falling debris, ink drops, ripples)
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
    version: int = 2  # generator version (see the module docstring)


def params_record(p: VideoParams) -> dict[str, Any]:
    """`p` as the JSON record stored in synthetic.json; version 2 omits `version` (its records stay byte-identical)."""
    record = asdict(p)
    if p.version == 2:
        del record["version"]
    return record


def _size_scale(size: int) -> float:
    return size / 64.0


def sample_params(
    class_name: str, rng: np.random.Generator, *, size: int = 64, num_frames: int | None = None,
    length_range: tuple[int, int] = (50, 200), scene_seed: int | None = None, camera: str = "smooth",
    version: int = GENERATOR_VERSION,
) -> VideoParams:
    """Draw one video's parameters. Appearance is drawn first and identically for every class.

    Without `num_frames` the length is uniform in `length_range` (default 2–8 s at 25 fps).
    `scene_seed` fixes the background (videos of one UCF-style group share a scene). `version`
    changes no draw here (a version-3 video has its version-2 twin's parameters).
    """
    if class_name not in CLASSES:
        raise ValueError(f"unknown synthetic class {class_name!r}; choose from {', '.join(CLASSES)}")
    if camera not in CAMERAS:
        raise ValueError(f"unknown camera {camera!r}; choose from {', '.join(CAMERAS)}")
    _check_version(version)
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
        angle0=angle0, motion_seed=motion_seed, camera=camera, version=int(version),
    )


def _check_version(version: int) -> None:
    if version not in VERSIONS:
        raise ValueError(f"unknown synthetic generator version {version!r}; choose from {', '.join(map(str, VERSIONS))}")


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
    a = alpha[..., None]
    top, left = top % h, left % w
    if top + sh <= h and left + sw <= w:  # inside the frame: a plain slice (the same arithmetic, faster)
        region = frame[top : top + sh, left : left + sw]
        region[...] = region * (1 - a) + sprite * a
        return
    rows = (top + np.arange(sh)) % h
    cols = (left + np.arange(sw)) % w
    region = frame[np.ix_(rows, cols)]
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


# ---------------------------------------------------------------------------------------------
# Version 3: irreversible processes behind the main object


@dataclass
class Debris:
    """Pebbles (one entry each) dropped at `birth`: fall, bounce with damping, slide to a stop, rest, fade."""

    birth: np.ndarray  # frame
    path: np.ndarray  # (N, T, 2) x, y per video frame (NaN before birth)
    opacity: np.ndarray  # (N, T) in [0, 1]
    radius: np.ndarray  # half side of the square pebble (px)
    color: np.ndarray  # (N, 3) float32


@dataclass
class Drops:
    """Ink drops (one entry each) that land at `birth` as small sharp blobs, then diffuse and evaporate."""

    birth: np.ndarray  # frame
    xy: np.ndarray  # (N, 2)
    sigma0: np.ndarray  # px at birth
    diffusion: np.ndarray  # growth of sigma^2 per frame (px^2)
    lifetime: np.ndarray  # evaporation time constant (frames)
    color: np.ndarray  # (N, 3) float32


@dataclass
class Ripples:
    """Rings (one entry each) that start at a point at `birth`, expand at `speed` px/frame and fade."""

    birth: np.ndarray
    xy: np.ndarray  # (N, 2)
    speed: np.ndarray
    amplitude: np.ndarray  # signed grey levels at birth (light or dark ring)
    lifetime: np.ndarray  # fade time constant (frames)
    width: np.ndarray


@dataclass
class IrreversibleScene:
    """Version 3's background physics: processes whose film played backwards is impossible.

    Why these three: each breaks time symmetry the way real scenes do, at a different level.
    - Debris (gravity + dissipation): a pebble appears, falls faster and faster, loses energy at
      every bounce, slides to a stop by friction and rests, then fades. Backwards, a resting
      pebble jumps by itself with growing bounces and flies up. Seen as a net downward flow and
      as motion that starts abruptly and ends smoothly.
    - Ink drops (diffusion): a sharp blob lands at once, then spreads (sigma^2 grows linearly,
      ink conserved) and evaporates. Backwards, a faint haze gathers into a sharp blob that
      vanishes in one frame. Seen as sharpness/contrast that jumps up and decays slowly.
    - Ripples (waves radiating energy): a ring starts at a point, expands and fades; backwards
      rings converge and brighten. Seen as outward motion and fading contrast.
    Births are a Poisson stream starting before the first frame, so the scene is stationary:
    every frame has processes of every age and a short clip anywhere in the video shows some.

    Why it does not leak the class: every number here comes from its own generator seeded by
    `motion_seed + 3`, and `motion_seed` is drawn the same way for every class (`sample_params`
    draws every parameter whatever the class), so for one rng the 14 classes get identical
    processes; only the main object's motion differs. The processes are drawn behind the main
    object and never interact with it. A single frame therefore tells no more about the class
    than in version 2 (tests: identical layers across classes; single-frame classifier at chance).
    """

    debris: Debris
    drops: Drops
    ripples: Ripples
    size: int


def _poisson_births(rng: np.random.Generator, rate: float, start: int, end: int) -> np.ndarray:
    """Birth times (frames, float) of a Poisson stream of `rate` per frame on [start, end)."""
    count = int(rng.poisson(rate * (end - start)))
    return np.sort(rng.uniform(start, end, size=count))


def _debris_path(n: int, birth: int, rng: np.random.Generator, k: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions `(n, 2)` (NaN before birth) and opacity `(n,)` of one pebble born at frame `birth`."""
    gravity = float(rng.uniform(0.15, 0.25) * k)  # px / frame^2
    restitution = float(rng.uniform(0.35, 0.55))
    friction = float(rng.uniform(0.8, 0.88))  # horizontal speed kept per frame on the ground
    x, y = float(rng.uniform(0, size)), float(rng.uniform(0, size))
    floor = y + float(rng.uniform(14, 30) * k)
    vx, vy = float(rng.uniform(-1.2, 1.2) * k), 0.0
    rest = int(rng.integers(4, 16))  # frames at rest before fading
    fade = int(rng.integers(6, 14))
    path = np.full((n, 2), np.nan)
    opacity = np.zeros(n)
    t, resting, faded, on_ground, gone = birth, 0, 0.0, False, False
    while t < n and not gone:  # a pebble born before frame 0 is simulated from its birth
        if t >= 0:
            path[t] = (x, y)
            opacity[t] = 1.0 - faded
        if not on_ground:
            vy += gravity
            y += vy
            if y >= floor:  # bounce: lose energy; a slow bounce ends on the ground
                y = floor
                vy = -restitution * vy
                vx *= 0.7
                if abs(vy) < 2.5 * gravity:
                    vy, on_ground = 0.0, True
        else:
            vx *= friction
            if abs(vx) < 0.03 * k:
                vx = 0.0
                resting += 1
                if resting > rest:
                    faded += 1.0 / fade
                    gone = faded >= 1.0
        x += vx
        t += 1
    return path, opacity


def irreversible_scene(p: VideoParams) -> IrreversibleScene:
    """The version-3 processes of video `p` (deterministic; identical for every class, see above)."""
    rng = np.random.default_rng(p.motion_seed + 3)
    n, s, k = p.num_frames, p.size, _size_scale(p.size)
    warmup = 120  # processes born up to this many frames before the first: a stationary scene
    births = _poisson_births(rng, 0.09, -warmup, n).astype(int)
    paths = [_debris_path(n, int(b), rng, k, s) for b in births]
    m = len(births)
    debris = Debris(births, np.array([path for path, _ in paths]).reshape(m, n, 2),
                    np.array([opacity for _, opacity in paths]).reshape(m, n), rng.uniform(1.6, 2.6, size=m) * k,
                    rng.integers(30, 226, size=(m, 3)).astype(np.float32))
    births = _poisson_births(rng, 0.25, -warmup, n)
    m = len(births)
    drops = Drops(births, rng.uniform(0, s, size=(m, 2)), rng.uniform(2.0, 3.5, size=m) * k,
                  rng.uniform(0.8, 2.0, size=m) * k * k, rng.uniform(10, 20, size=m),
                  rng.integers(30, 226, size=(m, 3)).astype(np.float32))
    births = _poisson_births(rng, 0.2, -warmup, n)
    m = len(births)
    ripples = Ripples(births, rng.uniform(0, s, size=(m, 2)), rng.uniform(1.0, 1.8, size=m) * k,
                      rng.choice([-1.0, 1.0], size=m) * rng.uniform(50, 80, size=m), rng.uniform(4, 7, size=m),
                      rng.uniform(1.2, 2.0, size=m) * k)
    return IrreversibleScene(debris, drops, ripples, s)


def _torus_offsets(size: int, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed offsets `(N, size)` of pixel columns from each x and of rows from each y, on the torus."""
    coords = np.arange(size, dtype=np.float32)
    xy = xy.astype(np.float32)
    return ((coords - xy[:, :1] + size / 2) % size - size / 2, (coords - xy[:, 1:] + size / 2) % size - size / 2)


def _blend(frame: np.ndarray, alpha: np.ndarray, colors: np.ndarray) -> None:
    """Lay `N` coloured layers (alpha `(N, H, W)`, colours `(N, 3)`) over `frame` in place.

    Where layers overlap their colours mix by alpha (like inks), total opacity at most 1: one
    blend per frame instead of one per layer keeps version 3 cheap to render.
    """
    total = alpha.sum(axis=0)
    mixed = (alpha.reshape(len(alpha), -1).T @ colors).reshape(*total.shape, 3) / np.maximum(total, 1e-6)[..., None]
    total = np.minimum(total, 1.0)[..., None]
    frame *= 1 - total
    frame += total * mixed


def _draw_scene(frame: np.ndarray, scene: IrreversibleScene, t: int) -> None:
    """Draw the processes alive at frame `t` onto `frame` (float32, in place): ink, ripples, then debris."""
    s = scene.size
    d = scene.drops
    age = np.maximum(t - d.birth, 0)
    var = d.sigma0**2 + d.diffusion * age
    peak = 0.9 * d.sigma0**2 / var * np.exp(-age / d.lifetime)  # ink conserved as it spreads, evaporating
    on = (d.birth <= t) & (peak >= 0.02)
    if on.any():
        dx, dy = _torus_offsets(s, d.xy[on])
        v = var[on, None].astype(np.float32)
        gy, gx = np.exp(-dy**2 / (2 * v)), peak[on, None].astype(np.float32) * np.exp(-dx**2 / (2 * v))
        _blend(frame, gy[:, :, None] * gx[:, None, :], d.color[on])  # a Gaussian is separable
    r = scene.ripples
    age = t - r.birth
    radius = r.speed * age
    amplitude = r.amplitude * np.exp(-np.maximum(age, 0) / r.lifetime)
    on = (age >= 0) & (radius <= s / 2) & (np.abs(amplitude) >= 1.0)
    if on.any():
        dx, dy = _torus_offsets(s, r.xy[on])
        distance = np.sqrt(dy[:, :, None] ** 2 + dx[:, None, :] ** 2)
        ring = np.exp(-((distance - radius[on, None, None].astype(np.float32)) ** 2)
                      / (2 * r.width[on, None, None].astype(np.float32) ** 2))
        frame += np.tensordot(amplitude[on].astype(np.float32), ring, axes=1)[..., None]
    b = scene.debris
    on = b.opacity[:, t] > 0
    if on.any():  # anti-aliased squares: a separable box profile
        dx, dy = _torus_offsets(s, b.path[on, t])
        half = b.radius[on, None].astype(np.float32) + 0.5
        by = np.clip(half - np.abs(dy), 0, 1)
        bx = np.clip(half - np.abs(dx), 0, 1) * b.opacity[on, t, None].astype(np.float32)
        _blend(frame, by[:, :, None] * bx[:, None, :], b.color[on])


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
    scene = irreversible_scene(p) if p.version >= 3 else None
    frames = np.empty((n, s, s, 3), np.float32)
    for i in range(n):
        frame = bg.copy()
        if scene is not None:
            _draw_scene(frame, scene, i)
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


def params_from_record(record: dict[str, Any]) -> VideoParams:
    """The `VideoParams` of one entry of synthetic.json's "videos" (the inverse of `params_record`;
    the entry's own bookkeeping keys such as path and group are dropped)."""
    names = {f.name for f in fields(VideoParams)}
    raw = {k: v for k, v in record.items() if k in names}
    raw["colors"] = tuple(tuple(int(c) for c in colour) for colour in raw["colors"])
    raw["start"] = tuple(float(v) for v in raw["start"])
    for key in ("background",):
        raw[key] = tuple(int(c) for c in raw[key])
    return VideoParams(**raw)


def object_centres(p: VideoParams) -> np.ndarray:
    """`(T, 2)` pixel (x, y) of the main object's centre in every rendered frame of `p`: its
    trajectory plus the camera shake, wrapped onto the torus (ground truth for tracking)."""
    xy, _, _ = trajectory(p)
    return np.mod(xy + camera_shake(p), p.size)


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
    out_dir, seed, size, cls, group, clip, fps, video_id, length_range, camera, version = job
    from vsslkit.data.writer import write_video

    cv2.setNumThreads(1)
    c = CLASSES.index(cls)
    scene_seed = int(np.random.default_rng([seed, c, group]).integers(2**31))  # a group shares its scene
    rng = np.random.default_rng([seed, c, group, clip])
    p = sample_params(cls, rng, size=size, length_range=length_range, scene_seed=scene_seed, camera=camera,
                      version=version)
    rel = Path("videos") / cls / f"{video_name(cls, group, clip)}.mp4"
    path = Path(out_dir) / rel
    if not path.exists():  # files are written atomically: an existing one is complete
        write_video(path, render(p), fps=fps, gop=25)
    info = params_record(p)
    info.update(path=rel.as_posix(), group=group, clip=clip, video_id=video_id)
    return info


def _request(videos_per_class: int, seed: int, size: int, fps: int, length_range: tuple[int, int],
             camera: str, version: int) -> dict[str, Any]:
    """The generation request stored in synthetic.json; the set is rebuilt when any entry differs.

    `generator_version` records the version, so a folder (and the frame store keyed by its files)
    never mixes versions: asking for another version of the same folder replaces every video.
    """
    extra = {} if camera == "smooth" else {"camera": camera}  # the default keeps earlier v2 requests valid
    return {**extra,
        "generator_version": int(version), "videos_per_class": videos_per_class, "seed": seed,
        "size": size, "fps": fps, "length_range": list(length_range), "classes": list(CLASSES),
        "groups_per_class": GROUPS_PER_CLASS,
        "test_groups": {str(k): list(v) for k, v in TEST_GROUPS.items()},
    }


def make_synthetic(
    out_dir: str | os.PathLike, *, videos_per_class: int = 43, seed: int = 0, size: int = 64, fps: int = 25,
    length_range: tuple[int, int] = (50, 200), workers: int = 2, progress: bool = True, camera: str = "smooth",
    version: int = GENERATOR_VERSION,
) -> Path:
    """Write the synthetic dataset in the UCF101 layout under `out_dir` and return `out_dir`.

    `version` 3 (the default) adds irreversible physics; 2 is the time-symmetric control (module docstring).

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
    _check_version(version)
    request = _request(videos_per_class, seed, size, fps, tuple(length_range), camera, version)
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
    jobs = [(str(out), seed, size, cls, g, k, fps, vid, tuple(length_range), camera, int(version))
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
