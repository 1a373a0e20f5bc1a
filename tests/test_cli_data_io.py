"""`vsslkit data probe` and `vsslkit bench data` through the real CLI entry point."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import moving_square_frames

from vsslkit.cli import main
from vsslkit.commands.bench_data import count_keyframes, make_bench_videos, sample_clips
from vsslkit.data.video import decode
from vsslkit.data.writer import write_video


def test_probe_lines_and_exit_code(tmp_path, tiny_video, capsys):
    (tmp_path / "broken.mp4").write_bytes(b"junk" * 10)
    assert main(["data", "probe", str(tiny_video)]) == 0
    line = capsys.readouterr().out.strip()
    assert line == f"{tiny_video}  frames=40 fps=25.000 size=48x48 rotation=0 duration=1.60s codec=h264"

    assert main(["data", "probe", str(tiny_video), str(tmp_path / "broken.mp4")]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith(f"{tmp_path / 'broken.mp4'}  ERROR not a readable video container")


def test_probe_folder_and_json(tmp_path, tiny_video, capsys):
    (tmp_path / "empty.avi").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a video, and no video extension: not probed")
    assert main(["data", "probe", "--json", str(tmp_path)]) == 1
    results = json.loads(capsys.readouterr().out)
    assert [r["ok"] for r in results] == [False, True]
    assert results[0] == {"ok": False, "path": str(tmp_path / "empty.avi"), "error": "empty file (0 bytes)"}
    assert results[1]["num_frames"] == 40 and results[1]["codec"] == "h264"


def test_probe_nothing_found(tmp_path, capsys):
    assert main(["data", "probe", str(tmp_path)]) == 1
    assert "no video files found" in capsys.readouterr().err


def test_bench_data_tiny(tmp_path, capsys):
    videos = [write_video(tmp_path / f"v{i}.mp4", moving_square_frames(70, size=48, seed=i), gop=250) for i in range(2)]
    (tmp_path / "bad.mp4").write_bytes(b"")
    args = ["bench", "data", "--videos", str(tmp_path), "--clips", "6", "--seed", "3", "--short-side", "32"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"skipped {tmp_path / 'bad.mp4'}: empty file" in out
    header = re.search(r"^bench data: 2 video files; 140 frames, (\d+) keyframes \(one per \d+ frames\); 6 clips of 16", out, re.MULTILINE)
    assert header and int(header.group(1)) >= 2
    rate = {name: float(re.search(rf"^{name} *: +([\d.]+) clips/s", out, re.MULTILINE).group(1))
            for name in ("raw store", "jpeg store", "decode_clip")}
    ratios = re.search(r"^ratios: raw / decode ([\d.]+)x; jpeg / decode ([\d.]+)x; raw / jpeg ([\d.]+)x", out, re.MULTILINE)
    assert all(r > 0 for r in rate.values())
    assert float(ratios.group(1)) == pytest.approx(rate["raw store"] / rate["decode_clip"], rel=0.05, abs=0.06)
    assert float(ratios.group(2)) == pytest.approx(rate["jpeg store"] / rate["decode_clip"], rel=0.05, abs=0.06)
    sizes = re.search(r"^bytes/frame: raw ([\d,]+); jpeg q90 ([\d,]+)  -> jpeg ([\d.]+)x smaller", out, re.MULTILINE)
    raw_bpf, jpeg_bpf = (float(sizes.group(i).replace(",", "")) for i in (1, 2))
    assert raw_bpf == pytest.approx(32 * 32 * 3, rel=0.01) and jpeg_bpf < raw_bpf  # 48x48 at short side 32 (+ .npy header)
    assert float(sizes.group(3)) == pytest.approx(raw_bpf / jpeg_bpf, rel=0.05)
    assert float(re.search(r"PSNR mean ([\d.]+) dB", out).group(1)) > 30
    assert "identical frames (raw store vs decode): yes" in out
    assert re.search(r"^goals: jpeg >= 8x smaller than raw: (met|NOT met); jpeg >= 20x faster", out, re.MULTILINE)
    assert len(videos) == 2 and len(out.strip().splitlines()) == 11


def test_sample_clips_fixed_seed_half_reversed(tmp_path):
    lengths = {tmp_path / "a.mp4": 100, tmp_path / "b.mp4": 20, tmp_path / "short.mp4": 10}
    clips = sample_clips(lengths, 40, np.random.default_rng(0))
    again = sample_clips(lengths, 40, np.random.default_rng(0))
    assert [(p, i.tolist()) for p, i in clips] == [(p, i.tolist()) for p, i in again]
    assert all(p.name != "short.mp4" for p, _ in clips)  # 10 frames cannot hold a 16-frame clip
    steps = [int(i[1] - i[0]) for _, i in clips]
    assert all(len(i) == 16 and 0 <= i.min() and i.max() < lengths[p] for p, i in clips)
    assert sum(s < 0 for s in steps) == 20 and {abs(s) for s in steps} <= {1, 2, 3, 4}
    assert len({abs(s) for s in steps}) > 1


def test_make_bench_videos_gop(tmp_path):
    paths = make_bench_videos(tmp_path, count=2, num_frames=60, height=96, width=128, gop=250)
    assert count_keyframes(paths) == (120, 2)  # no scene-cut keyframes: seeks land far back
    assert decode(paths[0]).shape == (60, 96, 128, 3)
