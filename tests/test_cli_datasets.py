"""`vsslkit data synthetic | check | prepare` through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from vsslkit.cli import main
from vsslkit.data.writer import write_video

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "synth"
    code = main(["data", "synthetic", "--out", str(out), "--videos-per-class", "7", "--size", "32",
                 "--min-length", "18", "--max-length", "24", "--workers", "1", "--no-progress"])
    assert code == 0
    return out


def test_synthetic_prints_summary_and_is_idempotent(synth: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["data", "synthetic", "--out", str(synth), "--videos-per-class", "7", "--size", "32",
                 "--min-length", "18", "--max-length", "24", "--workers", "1", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "14 classes: MoveRight, MoveLeft" in out and "98 videos" in out
    assert "split 1: 70 train / 28 test videos" in out and "split 3:" in out
    assert "nothing to do" in out


def test_check_clean_dataset_passes(synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["data", "check", str(synth), "--report-dir", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "98 videos, 98 usable" in out and "OK: every video is usable" in out
    report = json.loads((tmp_path / "check_report.json").read_text())
    assert report["layout"] == "ucf101" and report["ok"] and report["splits"]["2"] == {"train": 70, "test": 28}
    assert (tmp_path / "check_report.txt").read_text().startswith("dataset ")


def test_check_reports_unusable_videos_and_split_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "folder"
    rng = np.random.default_rng(0)
    write_video(root / "a" / "good.mp4", rng.integers(0, 255, (20, 32, 32, 3), dtype=np.uint8))
    write_video(root / "a" / "short.mp4", rng.integers(0, 255, (5, 32, 32, 3), dtype=np.uint8))
    (root / "b").mkdir()
    (root / "b" / "broken.avi").write_bytes(b"\x00" * 100)
    code = main(["data", "check", str(root), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1
    assert "1 unreadable videos:" in out and "broken.avi" in out
    assert "1 too short (< 17 frames):" in out and "short.mp4: 5 frames" in out
    assert "NOT OK" in out
    report = json.loads((root / "check_report.json").read_text())
    assert report["usable_videos"] == 1 and report["unreadable"][0]["path"].endswith("broken.avi")

    ucf = tmp_path / "ucf"
    write_video(ucf / "UCF-101" / "Jump" / "v_Jump_g01_c01.avi", rng.integers(0, 255, (20, 32, 32, 3), dtype=np.uint8))
    (ucf / "ucfTrainTestlist").mkdir()
    (ucf / "ucfTrainTestlist" / "classInd.txt").write_text("1 Jump\n")
    for k in (1, 2, 3):
        (ucf / "ucfTrainTestlist" / f"trainlist0{k}.txt").write_text("Jump/v_Jump_g01_c01.avi 1\nJump/v_Jump_g02_c01.avi 1\n")
        (ucf / "ucfTrainTestlist" / f"testlist0{k}.txt").write_text("Jump/v_Jump_g01_c01.avi\n")
    assert main(["data", "check", str(ucf), "--no-progress", "--min-frames", "4"]) == 1
    out = capsys.readouterr().out
    assert "trainlist01.txt:2: video Jump/v_Jump_g02_c01.avi not found" in out
    assert "split 1: " in out and "is in both train and test" in out and "group Jump_g01 straddles" in out


def test_check_unusable_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", str(tmp_path / "missing")]) == 1
    assert "dataset folder does not exist" in capsys.readouterr().err


def test_prepare_bad_checksum_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "UCF101.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("UCF-101/A/v_A_g01_c01.avi", b"x")
    code = main(["data", "prepare", "ucf101", "--out", str(tmp_path / "ucf"), "--videos", str(archive),
                 "--splits", str(archive), "--videos-md5", "0" * 32, "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1 and "md5 mismatch" in captured.err and "md5(UCF101.zip) = " in captured.out


def test_data_scripts_are_thin_wrappers(tmp_path: Path) -> None:
    for script in ("make_synthetic.py", "prepare_ucf101.py", "prepare_hmdb51.py"):
        result = subprocess.run([sys.executable, str(ROOT / "data_scripts" / script), "--help"],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0 and "--out" in result.stdout, result.stderr
    result = subprocess.run([sys.executable, str(ROOT / "data_scripts" / "prepare_hmdb51.py"), "--out", str(tmp_path),
                             "--videos", str(tmp_path / "nope.rar"), "--splits", "x.rar"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "nope.rar: archive not found" in result.stderr
