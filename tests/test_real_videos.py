"""Real footage from ../shared/real_videos (never copied here): counts, orientation, failures.

Frame counts are checked against the manifest, which was made by decoding; several containers
disagree with it (five HMDB51/UCF101 AVIs index one frame more than they hold, the cinepak AVI
claims 444 frames for 68, the MKV and the WebM carry no count) and the manifest is right, so no
tolerance is needed anywhere. Rotation handling was checked by eye on the decord keyboard clips
(all four upright after decode) and exactly on generated files in test_video.py. The manifest's width/height are the *coded* size; files with
90/270-degree rotation metadata display (and decode) with the sides swapped.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_VIDEOS

from vsslkit.data.store import FrameStore
from vsslkit.data.video import VideoError, decode, probe, resized_shape

pytestmark = pytest.mark.real_videos

# Rotation metadata (clockwise degrees). moviepy__fire2.mp4 carries a 180-degree display
# matrix the manifest does not mention; 180 keeps width/height.
ROTATION = {"decord__video_90.mov": 90, "decord__video_180.mov": 180, "decord__video_270.mov": 270,
            "moviepy__fire2.mp4": 180}


def _rows() -> list[dict[str, str]]:
    manifest = REAL_VIDEOS / "manifest.csv"
    if not manifest.is_file():
        return []
    with open(manifest, newline="") as f:
        return list(csv.DictReader(f))


ROWS = _rows()
GOOD = [r for r in ROWS if not r["decode_error"]]
BROKEN = [r for r in ROWS if r["decode_error"]]


def _display_size(row: dict[str, str]) -> tuple[int, int]:
    width, height = int(row["width"]), int(row["height"])
    return (height, width) if ROTATION.get(Path(row["path"]).name, 0) in (90, 270) else (width, height)


@pytest.mark.parametrize("row", GOOD, ids=[r["path"] for r in GOOD])
def test_decodes_to_manifest_count_and_orientation(real_videos, row):
    path = real_videos / row["path"]
    info = probe(path)
    n = int(row["frames"])
    assert info.num_frames == n
    assert info.decode_error == ""
    assert (info.width, info.height) == _display_size(row)
    assert info.rotation == ROTATION.get(path.name, 0)
    assert info.fps == pytest.approx(float(row["fps"]), abs=0.01)
    assert info.codec == row["codec"]
    assert info.duration == pytest.approx(float(row["duration_s"]), abs=0.02)
    # decode reaches the last frame (by decode count) and gives display-oriented frames
    frames = decode(path, indices=[n - 1, 0], short_side=128)
    width, height = _display_size(row)
    assert frames.shape == (2, *resized_shape(height, width, 128), 3)
    assert frames.any()  # pixels, not a zeroed buffer (decord__unordered.mov is all white)


@pytest.mark.parametrize("row", BROKEN, ids=[r["path"] for r in BROKEN])
def test_broken_stream_gives_good_frames_then_clean_error(real_videos, row):
    """Policy: frames before a mid-stream decode error are the video; past them is a VideoError."""
    path = real_videos / row["path"]
    n = int(row["frames"])
    info = probe(path)
    assert info.num_frames == n
    assert row["decode_error"] in info.decode_error
    assert decode(path, indices=[n - 1], short_side=64).shape[0] == 1
    with pytest.raises(VideoError) as err:
        decode(path, indices=[n], short_side=64)
    assert err.value.path == str(path) and row["decode_error"] in err.value.reason


def test_non_utf8_metadata_opens(real_videos):
    path = real_videos / "labeled/cartwheel/hmdb51_Turnk_r_Pippi_Michel_cartwheel_f_cm_np2_le_med_6.avi"
    assert probe(path).num_frames == 83


def test_frame_store_on_awkward_files(real_videos, tmp_path):
    names = ["decord__video_90.mov", "decord__unordered.mov", "decord__corrupted.mp4", "moviepy__no_duration.webm"]
    paths = [real_videos / "robustness" / n for n in names]
    store = FrameStore(tmp_path / "store", short_side=64)
    report = store.build(paths, progress=False)
    assert report.ok == paths and report.skipped == []
    assert [store.num_frames(p) for p in paths] == [3, 4, 28, 74]
    assert store.read(paths[0], [2, 0]).shape == (2, 114, 64, 3)  # portrait after rotation
    np.testing.assert_array_equal(store.read(paths[1], [3, 2, 1, 0]), decode(paths[1], indices=[3, 2, 1, 0], short_side=64))
