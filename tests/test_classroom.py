"""classroom helpers: environment switches, the course dataset built once and reused, CAM inputs."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vsslkit import classroom
from vsslkit.data.synthetic import render, sample_params


@pytest.mark.parametrize(("value", "fast"), [(None, True), ("1", True), ("true", True), ("0", False), ("off", False)])
def test_fast_mode_reads_the_environment(monkeypatch, value, fast):
    if value is None:
        monkeypatch.delenv("VSSLKIT_FAST", raising=False)
    else:
        monkeypatch.setenv("VSSLKIT_FAST", value)
    assert classroom.fast_mode() is fast


def test_fast_mode_rejects_unknown_values(monkeypatch):
    monkeypatch.setenv("VSSLKIT_FAST", "maybe")
    with pytest.raises(ValueError, match="VSSLKIT_FAST"):
        classroom.fast_mode()


def test_default_course_root_follows_vsslkit_data(monkeypatch, tmp_path):
    monkeypatch.setenv("VSSLKIT_DATA", str(tmp_path))
    assert classroom.default_course_root(fast=True) == tmp_path / "course-fast-v3"  # version 3 is the default
    assert classroom.default_course_root(fast=False) == tmp_path / "course-full-v3"
    assert classroom.default_course_root(fast=True, seed=3) == tmp_path / "course-fast-v3-seed3"
    # each generator version gets its own folder; version 2 keeps the names its caches already have
    assert classroom.default_course_root(fast=True, version=2) == tmp_path / "course-fast"
    assert classroom.default_course_root(fast=False, seed=3, version=3) == tmp_path / "course-full-v3-seed3"


def test_real_video_dir_needs_a_manifest(monkeypatch, tmp_path):
    monkeypatch.setenv("VSSLKIT_REAL_VIDEOS", str(tmp_path))
    assert classroom.real_video_dir() is None
    (tmp_path / "manifest.csv").write_text("file\n")
    assert classroom.real_video_dir() == tmp_path.resolve()


def test_model_input_residual_and_rgb():
    frames = np.zeros((5, 8, 8, 3), np.uint8)
    frames[2:] = 200
    x = classroom.model_input(frames)
    assert tuple(x.shape) == (1, 3, 4, 8, 8)
    moved = x[0].abs().sum(dim=(0, 2, 3)).numpy()
    assert moved[1] > 0 and moved[0] == moved[2] == moved[3] == 0  # only the 1 -> 2 step changes
    assert tuple(classroom.model_input(frames, residual=False).shape) == (1, 3, 5, 8, 8)
    with pytest.raises(ValueError, match="uint8"):
        classroom.model_input(frames.astype(np.float32))


def test_object_mask_covers_the_object_and_wraps():
    p = sample_params("MoveRight", np.random.default_rng(3), num_frames=12)
    frames = render(p).astype(np.float64)
    mask = classroom.object_mask(p)
    assert mask.shape == (12, p.size, p.size)
    # the object is what moves: frame differences are much larger inside the mask than outside
    diff = np.abs(np.diff(frames, axis=0)).mean(-1)
    both = mask[1:] | mask[:-1]
    assert diff[both].mean() > 3 * diff[~both].mean()
    # on the torus the disc near the right edge continues at the left edge
    edge = sample_params("MoveRight", np.random.default_rng(3), num_frames=2)
    from dataclasses import replace

    edge = replace(edge, start=(p.size - 1.0, p.size / 2))
    m = classroom.object_mask(edge)[0]
    assert m[:, 0].any() and m[:, -1].any()


@pytest.mark.slow
def test_course_dataset_builds_once_and_is_reused(tmp_path):
    root, store = tmp_path / "course", tmp_path / "frames"
    first = classroom.course_dataset(root, fast=True, store_root=store)
    assert first.fast and len(first.class_names) == 14
    assert len(first.train) == 14 * 5 and len(first.test) == 14 * 3  # split 1 tests groups 1-2
    assert all(n >= 50 for n in first.train.num_frames)
    assert first.store.short_side == 64
    frames = first.store.read(first.train.paths[0], [0, 2, 1])
    assert frames.shape == (3, 64, 64, 3) and frames.dtype == np.uint8
    built = {p: p.stat().st_mtime_ns for p in Path(root, "videos").rglob("*.mp4")}
    stored = {p: p.stat().st_mtime_ns for p in store.glob("*.npy")}

    start = time.perf_counter()
    second = classroom.course_dataset(root, fast=True, store_root=store)
    assert time.perf_counter() - start < 5.0
    assert second.train.paths == first.train.paths and second.train.num_frames == first.train.num_frames
    assert second.test.paths == first.test.paths and second.test.labels == first.test.labels
    assert {p: p.stat().st_mtime_ns for p in Path(root, "videos").rglob("*.mp4")} == built  # nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in store.glob("*.npy")} == stored
    text = second.describe()
    assert "fast mode" in text and "70 train videos" in text and str(tmp_path) not in text


def test_course_dataset_uses_vsslkit_fast_and_data(monkeypatch, tmp_path):
    """Without arguments the mode comes from VSSLKIT_FAST and the folder from VSSLKIT_DATA."""
    calls = {}

    def fake_make(out_dir, **kwargs):
        calls.update(kwargs, out_dir=Path(out_dir))
        raise RuntimeError("stop here")

    monkeypatch.setattr(classroom, "make_synthetic", fake_make)
    monkeypatch.setenv("VSSLKIT_DATA", str(tmp_path))
    monkeypatch.setenv("VSSLKIT_FAST", "0")
    with pytest.raises(RuntimeError, match="stop here"):
        classroom.course_dataset()
    assert calls["out_dir"] == tmp_path / "course-full-v3"
    assert calls["videos_per_class"] == classroom.FULL_VIDEOS_PER_CLASS
    monkeypatch.setenv("VSSLKIT_FAST", "1")
    with pytest.raises(RuntimeError, match="stop here"):
        classroom.course_dataset()
    assert calls["out_dir"] == tmp_path / "course-fast-v3"
    assert calls["videos_per_class"] == classroom.FAST_VIDEOS_PER_CLASS
    assert calls["version"] == 3  # the default
    with pytest.raises(RuntimeError, match="stop here"):
        classroom.course_dataset(version=3)
    assert calls["out_dir"] == tmp_path / "course-fast-v3" and calls["version"] == 3


def test_arrow_of_time_clips_are_one_clip_in_two_versions():
    from vsslkit.viz.plots import forward_backward_strips

    clips = classroom.arrow_of_time_clips("Bounce", seed=3, num_frames=6, stride=2, size=32)
    assert list(clips) == ["version 2", "version 3"]
    v2, v3 = clips["version 2"], clips["version 3"]
    assert v2.shape == v3.shape == (6, 32, 32, 3) and v2.dtype == np.uint8
    # same scene and object, plus version 3's processes: most pixels agree, some differ a lot
    diff = np.abs(v2.astype(int) - v3.astype(int)).max(axis=-1)
    assert np.median(diff) <= 2 and (diff > 40).mean() > 0.005
    sheet, labels = forward_backward_strips(clips, gap=2)
    assert sheet.shape == (4 * 34 - 2, 6 * 34 - 2, 3)
    assert labels == ["version 2, forward", "version 2, backward", "version 3, forward", "version 3, backward"]


@pytest.mark.parametrize(("value", "mode"), [("1", "fast mode"), ("0", "full mode")])
def test_setup_is_the_notebooks_first_cell(monkeypatch, tmp_path, capsys, value, mode):
    """Threads capped, the mode's course data, a fresh empty run folder per call, the mode printed."""
    built = []

    def fake_course(root=None, *, fast=None, **kwargs):
        built.append(fast)
        return f"course ({fast})"

    monkeypatch.setattr(classroom, "course_dataset", fake_course)
    monkeypatch.setenv("VSSLKIT_FAST", value)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    at_exit = []
    monkeypatch.setattr(classroom.atexit, "register", lambda function, *args, **kw: at_exit.append((function, args, kw)))
    threads = torch.get_num_threads()
    try:
        again = classroom.setup()
        assert torch.get_num_threads() == 2
        fast, course, runs = classroom.setup(threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert fast is (value == "1") and built == [fast, fast] and course == f"course ({fast})"
    assert again.course == course and again.fast is fast
    assert runs.is_dir() and runs.parent == tmp_path and runs.name.startswith("vsslkit-notebook-")
    assert not any(runs.iterdir()) and again.runs != runs and again.runs.is_dir()
    assert capsys.readouterr().out == f"{mode}\n{mode}\n"
    # both run folders are removed when the kernel exits (re-running notebooks must not fill the disk)
    assert [args for _, args, _ in at_exit] == [(again.runs,), (runs,)]
    for function, args, kw in at_exit:
        function(*args, **kw)
    assert not again.runs.exists() and not runs.exists()


def test_committed_result_summary_reads_the_numbers_from_the_file(tmp_path):
    import json

    seed = {"linear_probe": {"video_accuracy": 10.0}, "retrieval": {"R@1": 20.0},
            "finetune": {"video_accuracy": 30.0, "labelled_videos": 42}}
    doc = {"protocol": {"seeds": [0, 1], "pretrain_steps": 250, "train_videos": 420, "test_videos": 182,
                        "downstream": {"label_fraction": 0.1}},
           "runs": {"random init": [seed, seed], "pretrained": [seed, {**seed, "retrieval": {"R@1": 30.0}}]}}
    path = tmp_path / "q.json"
    path.write_text(json.dumps(doc))
    text = classroom.committed_result_summary(path)
    assert "2 paired seeds, 250 pretraining steps, 10% labels = 42 labelled videos of 420, 182 test videos" in text
    assert "frozen R@1: random init 20.0 ± 0.0 % · pretrained 25.0 ± 7.1 %" in text
    assert "no committed result" in classroom.committed_result_summary(tmp_path / "missing.json")
    assert "linear probe" in classroom.committed_result_summary()  # the file the notebook reads is in the repo
