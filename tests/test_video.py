"""vsslkit.data.video: probe/decode on generated files, broken inputs, rotation, seeking clips."""

from __future__ import annotations

import pickle
import wave
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import moving_square_frames

from vsslkit.data.video import VideoError, decode, decode_clip, probe, resized_shape
from vsslkit.data.writer import write_video


def _write_rotated(path: Path, frames: np.ndarray, clockwise: int) -> Path:
    """H.264 mp4 whose display matrix says "turn the picture `clockwise` degrees".

    (write_video's `rotation=` sets the old `rotate` tag, which FFmpeg 8's muxer ignores.)
    """
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10", "bf": "0"}
        stream.set_display_rotation(-clockwise)  # PyAV takes counter-clockwise degrees
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _square_x(frame: np.ndarray) -> int:
    """Column where the moving square of `moving_square_frames` starts (rows 10-18)."""
    return int(np.argmax(frame[10:18, :, 0].mean(axis=0) > 150))


# ---------------------------------------------------------------- broken inputs


def _zero_bytes(tmp: Path) -> Path:
    (tmp / "zero.mp4").write_bytes(b"")
    return tmp / "zero.mp4"


def _random_bytes(tmp: Path) -> Path:
    (tmp / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    return tmp / "noise.mp4"


def _text(tmp: Path) -> Path:
    (tmp / "notes.mp4").write_text("this is a text file, not a video\n" * 50)
    return tmp / "notes.mp4"


def _truncated_mp4(tmp: Path) -> Path:
    data = write_video(tmp / "full.mp4", moving_square_frames()).read_bytes()
    (tmp / "half.mp4").write_bytes(data[: len(data) // 2])  # the index (moov) sits at the end
    return tmp / "half.mp4"


def _audio_only(tmp: Path) -> Path:
    with wave.open(str(tmp / "sound.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(b"\0" * 16000)
    return tmp / "sound.wav"


BROKEN = [
    (_zero_bytes, "empty file"),
    (_random_bytes, "not a readable video container"),
    (_text, "not a readable video container"),
    (_truncated_mp4, "not a readable video container"),
    (_audio_only, "no video stream"),
    (lambda tmp: tmp / "missing.mp4", "file not found"),
    (lambda tmp: tmp, "is a directory"),
]


@pytest.mark.parametrize("make, reason", BROKEN, ids=[r for _, r in BROKEN])
@pytest.mark.parametrize("reader", [probe, decode, lambda p: decode_clip(p, [3, 1])], ids=["probe", "decode", "clip"])
def test_broken_inputs_raise_video_error_naming_file(tmp_path, make, reason, reader):
    path = make(tmp_path)
    with pytest.raises(VideoError) as info:
        reader(path)
    assert info.value.path == str(path)
    assert reason in info.value.reason
    assert str(info.value) == f"{path}: {info.value.reason}"


def test_video_error_survives_pickling():  # DataLoader workers send exceptions between processes
    err = pickle.loads(pickle.dumps(VideoError("/x/a.mp4", "broken")))
    assert (err.path, err.reason, str(err)) == ("/x/a.mp4", "broken", "/x/a.mp4: broken")


def test_truncated_stream_reports_decodable_count(tmp_path):
    data = write_video(tmp_path / "full.mkv", moving_square_frames(), gop=5).read_bytes()
    (tmp_path / "half.mkv").write_bytes(data[: len(data) // 2])
    info = probe(tmp_path / "half.mkv")
    assert 1 <= info.num_frames < 40
    assert len(decode(tmp_path / "half.mkv")) == info.num_frames
    with pytest.raises(VideoError, match=f"frame {info.num_frames} requested but only {info.num_frames}"):
        decode(tmp_path / "half.mkv", indices=[0, info.num_frames])


# ---------------------------------------------------------------- good files


def test_probe_generated_video(tiny_video):
    info = probe(tiny_video)
    assert (info.num_frames, info.fps, info.width, info.height) == (40, 25.0, 48, 48)
    assert (info.rotation, info.codec, info.decode_error) == (0, "h264", "")
    assert info.duration == pytest.approx(1.6)


def test_decode_returns_frames_in_order_any_indices(tiny_video):
    full = decode(tiny_video)
    assert full.dtype == np.uint8 and full.shape == (40, 48, 48, 3)
    assert [_square_x(f) for f in full] == list(range(40))  # frame t shows the square at x = t
    idx = [5, 5, 39, 0, 12, 11, 10]
    np.testing.assert_array_equal(decode(tiny_video, indices=idx), full[idx])
    assert decode(tiny_video, indices=[]).shape == (0, 48, 48, 3)


def test_decode_bad_indices(tiny_video):
    with pytest.raises(VideoError, match="frame 40 requested but only 40 frames decode"):
        decode(tiny_video, indices=[3, 40])
    with pytest.raises(ValueError, match="negative frame index"):
        decode(tiny_video, indices=[-1])
    with pytest.raises(ValueError, match="integers"):
        decode(tiny_video, indices=[1.5])


@pytest.mark.parametrize("h, w, short, expected", [(240, 320, 128, (128, 171)), (320, 240, 128, (171, 128)),
                                                     (144, 176, 128, (128, 156)), (50, 50, 128, (128, 128))])
def test_resized_shape(h, w, short, expected):
    assert resized_shape(h, w, short) == expected


def test_decode_short_side(tmp_path):
    frames = moving_square_frames(10, size=64)[:, :, :48].copy()  # 64 high, 48 wide
    path = write_video(tmp_path / "tall.mp4", frames, crf=0)
    small = decode(path, short_side=24)
    assert small.shape == (10, 32, 24, 3)
    big = decode(path).astype(np.float32)
    # area averaging by 2x2 blocks is what INTER_AREA does for an exact factor of 2
    expected = big.reshape(10, 32, 2, 24, 2, 3).mean(axis=(2, 4))
    assert np.abs(small - expected).max() <= 1


@pytest.mark.parametrize("clockwise", [90, 180, 270])
def test_rotation_is_applied(tmp_path, clockwise):
    frames = np.zeros((4, 32, 48, 3), np.uint8)
    frames[:, 2:10, 2:14] = 255  # a bright block in the top-left corner of the coded picture
    path = _write_rotated(tmp_path / f"rot{clockwise}.mp4", frames, clockwise)
    info = probe(path)
    assert info.rotation == clockwise
    assert (info.width, info.height) == ((48, 32) if clockwise == 180 else (32, 48))
    shown = decode(path).astype(np.int16)
    expected = np.rot90(frames, k=-clockwise // 90, axes=(1, 2)).astype(np.int16)
    assert shown.shape == expected.shape
    assert np.abs(shown - expected).mean() < 3
    assert decode(path, short_side=16).shape == ((4, 16, 24, 3) if clockwise == 180 else (4, 24, 16, 3))


@pytest.mark.parametrize("gop", [1, 7, 250])
def test_decode_clip_matches_full_decode(tmp_path, gop):
    rng = np.random.default_rng(gop)
    frames = rng.integers(0, 256, size=(90, 32, 48, 3), dtype=np.uint8)
    path = write_video(tmp_path / "noise.mp4", frames, gop=gop)
    full = decode(path)
    for _ in range(12):
        stride, reverse = int(rng.integers(1, 5)), bool(rng.integers(0, 2))
        start = int(rng.integers(0, 90 - 15 * stride))
        idx = start + stride * np.arange(16)
        idx = idx[::-1] if reverse else idx
        np.testing.assert_array_equal(decode_clip(path, idx), full[idx])
    np.testing.assert_array_equal(decode_clip(path, [89, 0, 89]), full[[89, 0, 89]])
    assert decode_clip(path, [10, 11], short_side=16).shape == (2, 16, 24, 3)
    with pytest.raises(VideoError, match="frame 90 requested"):
        decode_clip(path, [80, 90])


def test_writer_rotation_round_trips_through_probe_and_decode(tmp_path):
    """write_video(rotation=90) stores a display matrix that probe/decode honour."""
    from vsslkit.data.video import decode, probe
    from vsslkit.data.writer import write_video

    frames = np.random.default_rng(0).integers(0, 255, (6, 48, 32, 3), dtype=np.uint8)  # 48 high, 32 wide
    path = write_video(tmp_path / "rot.mp4", frames, rotation=90)
    info = probe(path)
    assert info.rotation == 90 and (info.width, info.height) == (48, 32)
    assert decode(path).shape == (6, 32, 48, 3)
