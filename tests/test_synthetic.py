"""The synthetic dataset: deterministic, motion-only classes, a UCF101 layout with group splits."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from vsslkit.data.datasets import open_dataset
from vsslkit.data.synthetic import (
    CLASSES,
    GENERATOR_VERSION,
    TEST_GROUPS,
    VERSIONS,
    _request,
    camera_shake,
    irreversible_scene,
    load_metadata,
    make_synthetic,
    params_record,
    render,
    render_video,
    sample_params,
    trajectory,
)


def test_fourteen_classes_and_determinism() -> None:
    assert len(CLASSES) == 14 and len(set(CLASSES)) == 14 and all("_" not in c for c in CLASSES)
    a = render_video("Orbit", np.random.default_rng(7), num_frames=30)
    b = render_video("Orbit", np.random.default_rng(7), num_frames=30)
    c = render_video("Orbit", np.random.default_rng(8), num_frames=30)
    assert a.dtype == np.uint8 and a.shape == (30, 64, 64, 3)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert render_video("MoveUp", np.random.default_rng(0), size=32, num_frames=5).shape == (5, 32, 32, 3)
    with pytest.raises(ValueError, match="unknown synthetic class"):
        render_video("Jump", np.random.default_rng(0))


def test_length_is_two_to_eight_seconds() -> None:
    lengths = [sample_params("Bounce", np.random.default_rng(s)).num_frames for s in range(200)]
    assert 50 <= min(lengths) and max(lengths) <= 200 and max(lengths) - min(lengths) > 100


def test_appearance_is_independent_of_class() -> None:
    """Same rng → same appearance for every class: the class only changes the motion."""
    appearance = ("shape", "texture", "colors", "radius", "background", "noise_amplitude", "stripes", "scene_seed")
    params = [sample_params(c, np.random.default_rng(11)) for c in CLASSES]
    for p in params[1:]:
        assert all(getattr(p, k) == getattr(params[0], k) for k in appearance)
    # and the mean colour of the first frame does not depend on the class
    firsts = [render(p)[0].reshape(-1, 3).mean(0) for p in params]
    assert np.ptp(np.stack(firsts), axis=0).max() < 12


@pytest.mark.parametrize("pair", [("MoveRight", "MoveLeft"), ("RotateCW", "RotateCCW"), ("Approach", "Recede"),
                                  ("Accelerate", "Decelerate")])
def test_pairs_are_time_reversals(pair: tuple[str, str]) -> None:
    """Each pair differs only in direction / arrow of time: the reversed speed profile matches."""
    fwd, bwd = (trajectory(sample_params(c, np.random.default_rng(5), num_frames=80)) for c in pair)
    motion_f = np.concatenate([np.diff(fwd[0], axis=0), np.diff(fwd[1])[:, None], np.diff(np.log(fwd[2]))[:, None]], 1)
    motion_b = np.concatenate([np.diff(bwd[0], axis=0), np.diff(bwd[1])[:, None], np.diff(np.log(bwd[2]))[:, None]], 1)
    if pair[0] == "Accelerate":  # same direction, speed profile played backwards
        assert np.allclose(motion_f[::-1], motion_b)
    else:  # same magnitudes, opposite sign
        assert np.allclose(motion_f, -motion_b)
    assert not np.allclose(motion_f, motion_b)


def test_single_frame_cannot_tell_approach_from_recede() -> None:
    """Sizes are centred on the midpoint: the set of sizes over a video is the same for both."""
    for seed in range(5):
        grow = trajectory(sample_params("Approach", np.random.default_rng(seed)))[2]
        shrink = trajectory(sample_params("Recede", np.random.default_rng(seed)))[2]
        assert np.allclose(np.sort(grow), np.sort(shrink))
        assert np.isclose(np.exp(np.log(grow).mean()), 1.0)
        assert grow[-1] > 1.5 * grow[0] and shrink[-1] < shrink[0] / 1.5


def test_positions_wrap_and_do_not_leak_direction() -> None:
    """Start positions are uniform over the frame, so where the object is says nothing of where it goes."""
    starts = np.array([sample_params("MoveRight", np.random.default_rng(s)).start for s in range(300)])
    assert starts.min() >= 0 and starts.max() <= 64
    assert abs(starts[:, 0].mean() - 32) < 4 and abs(starts[:, 1].mean() - 32) < 4
    frames = render(sample_params("MoveRight", np.random.default_rng(1), num_frames=120))
    assert frames.shape[0] == 120  # 120 frames at >= 1 px/frame cross the 64 px frame: wrapping worked


def test_speeds_within_design_ranges() -> None:
    for s in range(50):
        p = sample_params("RotateCW", np.random.default_rng(s))
        assert 1.0 <= p.speed <= 2.3 and 4.5 <= p.spin <= 10.5
        xy, _angle, _ = trajectory(sample_params("MoveDown", np.random.default_rng(s)))
        step = np.diff(xy, axis=0)
        assert np.allclose(step[:, 0], 0) and np.all((1.0 <= step[:, 1]) & (step[:, 1] <= 2.3))


def test_camera_shake_is_smooth_so_displacement_grows_with_the_frame_gap() -> None:
    """Speed tasks read how far things move per sampled step; the camera must obey the same law.

    White per-frame jitter (generator version 1) moved the frame as far between neighbours as
    between frames 3 apart (ratio ~1) and hid speed changes; a smooth wobble grows with the gap.
    """
    for seed in range(20):
        p = sample_params("Orbit", np.random.default_rng(seed))
        shake = camera_shake(p)
        assert shake.shape == (p.num_frames, 2) and np.array_equal(shake, camera_shake(p))
        assert np.isclose(shake.std(), 0.8, atol=1e-6)
        assert _mean_step(shake, 1) < 0.3  # sub-pixel per frame
        assert _mean_step(shake, 3) > 2.5 * _mean_step(shake, 1)
    # camera="white" (version 1's jitter, kept for comparison) breaks that law
    white = camera_shake(sample_params("Orbit", np.random.default_rng(0), num_frames=200, camera="white"))
    assert set(np.unique(white)) == {-1.0, 0.0, 1.0}
    assert _mean_step(white, 3) < 1.2 * _mean_step(white, 1)
    with pytest.raises(ValueError, match="unknown camera"):
        sample_params("Orbit", np.random.default_rng(0), camera="tripod")


def _mean_step(path: np.ndarray, gap: int) -> float:
    return float(np.linalg.norm(path[gap:] - path[:-gap], axis=1).mean())


def test_motion_decides_every_class() -> None:
    """Every class moves: frame differences exceed those of the same scene with the object frozen."""
    for c in CLASSES:
        p = sample_params(c, np.random.default_rng(2), num_frames=40)
        frames = render(p).astype(np.float32)
        diff = np.abs(np.diff(frames, axis=0)).mean()
        assert diff > 0
        xy, angle, scale = trajectory(p)
        moved = np.abs(np.diff(xy, axis=0)).sum() + np.abs(np.diff(angle)).sum() + np.abs(np.diff(np.log(scale))).sum()
        assert moved > 1.0, c


def test_make_synthetic_layout_splits_and_idempotence(tmp_path: Path) -> None:
    kw = {"videos_per_class": 7, "size": 32, "length_range": (20, 30), "workers": 1, "progress": False}
    out = make_synthetic(tmp_path / "syn", **kw)
    meta = json.loads((out / "synthetic.json").read_text())
    assert len(meta["videos"]) == 14 * 7 and meta["request"]["seed"] == 0
    assert {"class_name", "speed", "shape", "path", "group"} <= set(meta["videos"][0])
    assert (out / "videos" / "MoveRight" / "v_MoveRight_g01_c01.mp4").is_file()
    for split, test_groups in TEST_GROUPS.items():
        train = open_dataset(out, split=split, subset="train")
        test = open_dataset(out, split=split, subset="test")
        assert train.problems == [] and test.problems == []
        assert train.class_names == list(CLASSES)
        assert len(train) + len(test) == 14 * 7 and not set(train.paths) & set(test.paths)
        assert not set(train.groups) & set(test.groups)
        assert all(int(g[-2:]) in test_groups for g in test.groups)
    first = (out / "videos" / "MoveRight" / "v_MoveRight_g01_c01.mp4").stat().st_mtime_ns
    make_synthetic(out, **kw)
    assert (out / "videos" / "MoveRight" / "v_MoveRight_g01_c01.mp4").stat().st_mtime_ns == first


def test_result_does_not_depend_on_workers(tmp_path: Path) -> None:
    from vsslkit.data.video import decode

    kw = {"videos_per_class": 7, "size": 32, "seed": 3, "length_range": (20, 30), "progress": False}
    one = make_synthetic(tmp_path / "one", workers=1, **kw)
    two = make_synthetic(tmp_path / "two", workers=2, **kw)
    meta1, meta2 = (json.loads((d / "synthetic.json").read_text())["videos"] for d in (one, two))
    assert meta1 == meta2 and all(20 <= v["num_frames"] <= 30 for v in meta1)
    # Same parameters and the same content. The encoded bytes are compared with a tolerance:
    # CI once saw the two files differ in the last frames by a few grey levels, which is within
    # H.264's lossy error. The frames a video is rendered from come only from (seed, video id).
    rel = "videos/Zigzag/v_Zigzag_g03_c01.mp4"
    a, b = decode(one / rel).astype(float), decode(two / rel).astype(float)
    assert a.shape == b.shape and np.abs(a - b).mean() < 2.0
    other = decode(one / "videos/Zigzag/v_Zigzag_g04_c01.mp4").astype(float)
    assert np.abs(a[: len(other)] - other[: len(a)]).mean() > 10 * max(np.abs(a - b).mean(), 0.1)


def test_refuses_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "videos").mkdir()
    with pytest.raises(FileExistsError, match="videos/ folder"):
        make_synthetic(tmp_path, videos_per_class=7, size=32, length_range=(20, 30), workers=1, progress=False)


# --------------------------------------------------------------------------------- versions


def _v2_params(seed: int, *, size: int, length_range: tuple[int, int], cameras: tuple[str, ...]) -> list:
    return [sample_params(cls, np.random.default_rng([seed, c]), size=size, length_range=length_range,
                          camera=camera, version=2)
            for c, cls in enumerate(CLASSES) for camera in cameras]


def _records_hash(params: list) -> str:
    h = hashlib.sha256()
    for p in params:
        h.update(json.dumps(params_record(p), sort_keys=True).encode())
    return h.hexdigest()


def test_version_2_is_unchanged_by_version_3() -> None:
    """Version 2 as it was before version 3 existed (commit 87d17d3): parameters and their stored
    records bit-identical, pixels equal up to OpenCV's CPU dispatch.

    The records are pure numpy-RNG arithmetic and pinned by hash; `params_record` must keep them
    byte-identical so synthetic.json of a version-2 set does not change. The pixels are not
    portable bit for bit: the background's float32 bicubic `cv2.resize` rounds differently with
    different SIMD paths (CI moved to a CPU where ~6 pixels in a million came out one grey level
    apart; `cv2.setUseOptimized(False)` reproduces that here). So the pixels are checked against
    8 x 8 block sums of 87d17d3's frames (tests/data/synthetic_v2_blocks.npz, written on a CPU
    where 87d17d3 and this code render bit-identical 28 MB of frames): a few one-level flips per
    block are dispatch noise, a change to the renderer moves hundreds of blocks by far more.
    """
    small = _v2_params(0, size=32, length_range=(20, 28), cameras=("smooth", "white"))
    default = _v2_params(1, size=64, length_range=(50, 200), cameras=("smooth",))
    assert _records_hash(small + default) == "77fa0ef235d9948529915d1e7414b4be9b41d83c112b7aa7c7d6d0680aa72a2d"
    reference = np.load(Path(__file__).parent / "data" / "synthetic_v2_blocks.npz")
    assert [p.num_frames for p in small] == reference["lengths"].tolist()
    frames = np.concatenate([render(p) for p in small]).astype(np.int64)
    blocks = frames.reshape(len(frames), 4, 8, 4, 8, 3).sum(axis=(2, 4))
    diff = np.abs(blocks - reference["block_sums"].astype(np.int64))
    assert diff.max() <= 3 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())
    request = json.dumps(_request(43, 0, 64, 25, (50, 200), "smooth", 2), sort_keys=True).encode()
    assert hashlib.sha256(request).hexdigest() == "2a1abc284ab8659091be5fe7114f9d6adce23a12420c1d9e0a4879550a94a9d6"
    assert GENERATOR_VERSION == 3 and sample_params("Orbit", np.random.default_rng(0)).version == 3
    # version 3 draws the same parameters and adds the irreversible layer on top
    p2 = sample_params("Orbit", np.random.default_rng(4), num_frames=30, version=2)
    p3 = sample_params("Orbit", np.random.default_rng(4), num_frames=30, version=3)
    assert replace(p2, version=3) == p3 and params_record(p3)["version"] == 3
    assert np.abs(render(p3).astype(float) - render(p2).astype(float)).mean() > 2
    with pytest.raises(ValueError, match="unknown synthetic generator version 4"):
        sample_params("Orbit", np.random.default_rng(0), version=4)


def test_version_3_processes_are_the_same_for_every_class() -> None:
    """The irreversible layer comes from motion_seed + 3, drawn the same for every class: no class leak."""
    scenes = [irreversible_scene(sample_params(c, np.random.default_rng(9), num_frames=60, version=3)) for c in CLASSES]
    first = scenes[0]
    assert len(first.drops.birth) > 5 and len(first.ripples.birth) > 3 and len(first.debris.birth) > 3
    for scene in scenes[1:]:
        for layer in ("debris", "drops", "ripples"):
            a, b = getattr(first, layer), getattr(scene, layer)
            for name in vars(a):
                assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), (layer, name)
    # and frames differ between two classes only around the main object: same background + processes
    frames = [render(sample_params(c, np.random.default_rng(9), num_frames=60, version=3)) for c in ("MoveUp", "MoveDown")]
    assert np.median(np.abs(frames[0].astype(int) - frames[1].astype(int))) <= 1


def test_version_3_processes_run_one_way() -> None:
    """Each process has a direction: pebbles end lower than they start and stop; ink spreads and
    fades; rings grow and fade. Played backwards, each would run the impossible way."""
    for seed in range(5):
        scene = irreversible_scene(sample_params("Bounce", np.random.default_rng(seed), num_frames=200, version=3))
        d = scene.debris
        for b, path, opacity in zip(d.birth, d.path, d.opacity):
            seen = np.flatnonzero(opacity > 0)
            if b < 0 or len(seen) < 60 or opacity[seen[-1]] < 1:  # follow pebbles seen from birth to rest
                continue
            y, x = path[seen, 1], path[seen, 0]
            assert y[-1] > y[0] + 5  # fell and stayed down
            vy = np.diff(y)
            assert vy[:3].max() > 0 and np.all(vy[-5:] == 0) and np.all(np.diff(x[-5:]) == 0)  # came to rest
            assert np.all(np.diff(opacity[seen]) <= 0)
            bounces = np.flatnonzero((vy[:-1] > 0) & (vy[1:] < 0))
            heights = [y[i + 1] - y[i + 1 :].min() for i in bounces if i + 1 < len(y)]
            assert all(a >= b for a, b in itertools.pairwise(heights))  # every bounce lower than the last
        drops = scene.drops
        ages = np.arange(0, 30)
        var = drops.sigma0[:, None] ** 2 + drops.diffusion[:, None] * ages
        peak = drops.sigma0[:, None] ** 2 / var * np.exp(-ages / drops.lifetime[:, None])
        assert np.all(np.diff(var, axis=1) > 0) and np.all(np.diff(peak, axis=1) < 0)
        assert np.all(scene.ripples.speed > 0) and np.all(scene.ripples.lifetime > 0)


def test_version_3_frames_are_stationary_and_cheap_to_tell_from_version_2() -> None:
    """Births start before the first frame, so the first and last frames look alike (no 'start of video' cue)."""
    p = sample_params("Orbit", np.random.default_rng(2), num_frames=120, version=3)
    frames = render(p).astype(np.float32)
    p2 = replace(p, version=2)
    extra = np.abs(frames - render(p2).astype(np.float32)).mean(axis=(1, 2, 3))  # what the processes add, per frame
    assert extra[:20].mean() > 0.5 * extra.mean() and extra[-20:].mean() > 0.5 * extra.mean()


@pytest.mark.parametrize("version", [2, 3])
def test_a_single_frame_does_not_tell_the_class(version: int) -> None:
    """Design goal: one frame gives chance accuracy. Logistic regression on a downsampled frame per
    video (one random frame of each of 14 x 40 videos, grouped train/test) stays <= chance + 5 points,
    while the same classifier reads what a frame does show (is the scene's background light?)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(123)
    x, y, light, j_of = [], [], [], []
    for c, cls in enumerate(CLASSES):
        for j in range(40):
            p = sample_params(cls, np.random.default_rng([77, c, j]), size=32, num_frames=10, version=version)
            x.append(_small(render(p)[int(rng.integers(p.num_frames))]))
            y.append(c)
            light.append(sum(p.background) > 3 * 128)
            j_of.append(j)
    x, y, light, train = np.array(x), np.array(y), np.array(light), np.array(j_of) < 20

    def score(labels: np.ndarray) -> float:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=300))
        return model.fit(x[train], labels[train]).score(x[~train], labels[~train])

    assert score(y) <= 1 / 14 + 0.05
    assert score(light) > 0.8


def _small(frame: np.ndarray) -> np.ndarray:
    return cv2.resize(frame, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32).ravel() / 255


def test_the_version_is_recorded_and_folders_never_mix_versions(tmp_path: Path) -> None:
    from vsslkit.cli import main
    from vsslkit.commands.datasets import SYNTHETIC_DEFAULT_VERSION, SYNTHETIC_VERSIONS

    assert SYNTHETIC_VERSIONS == VERSIONS and SYNTHETIC_DEFAULT_VERSION == GENERATOR_VERSION
    out = tmp_path / "syn"
    args = ["data", "synthetic", "--out", str(out), "--videos-per-class", "7", "--size", "32", "--min-length", "20",
            "--max-length", "24", "--workers", "1", "--no-progress"]
    assert main(args) == 0  # the default is version 3
    meta = load_metadata(out)
    assert meta["request"]["generator_version"] == 3 and {v["version"] for v in meta["videos"]} == {3}
    video = out / meta["videos"][0]["path"]
    first = video.stat().st_mtime_ns
    assert main([*args, "--version", "3"]) == 0 and video.stat().st_mtime_ns == first  # same request: kept
    assert main([*args, "--version", "2"]) == 0  # another version replaces every video of the folder
    meta = load_metadata(out)
    assert meta["request"]["generator_version"] == 2 and all("version" not in v for v in meta["videos"])
    assert video.stat().st_mtime_ns != first
    with pytest.raises(ValueError, match="unknown synthetic generator version"):
        make_synthetic(tmp_path / "bad", videos_per_class=7, version=1, progress=False)
