"""Dataset layouts: official split formats, bad entries reported by name, group-safe splitting."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from vsslkit.data.datasets import (
    DatasetError,
    VideoIndex,
    detect_layout,
    group_val_split,
    hmdb_group,
    label_fraction,
    load_folder,
    load_hmdb51,
    load_ucf101,
    open_dataset,
)


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not decoded by the loaders")
    return path


@pytest.fixture
def ucf(tmp_path: Path) -> Path:
    """UCF101 layout, official formats, with the known case quirk and a few broken lines."""
    root = tmp_path / "ucf"
    for cls in ("ApplyEyeMakeup", "HandstandPushups"):
        file_cls = "HandStandPushups" if cls == "HandstandPushups" else cls
        for g in (1, 2, 8, 9):
            for c in (1, 2):
                touch(root / "UCF-101" / cls / f"v_{file_cls}_g{g:02d}_c{c:02d}.avi")
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n")
    train = [f"ApplyEyeMakeup/v_ApplyEyeMakeup_g{g:02d}_c{c:02d}.avi 1" for g in (8, 9) for c in (1, 2)]
    train += [f"HandstandPushups/v_HandstandPushups_g{g:02d}_c{c:02d}.avi 2" for g in (8, 9) for c in (1, 2)]
    train += ["ApplyEyeMakeup/v_ApplyEyeMakeup_g10_c01.avi 1",  # missing file
              "Archery/v_Archery_g08_c01.avi 3",  # unknown class
              "garbage line with words",  # unparsable
              ""]
    (lists / "trainlist01.txt").write_text("\n".join(train))
    test = [f"ApplyEyeMakeup/v_ApplyEyeMakeup_g{g:02d}_c{c:02d}.avi" for g in (1, 2) for c in (1, 2)]
    test += [f"HandstandPushups/v_HandstandPushups_g{g:02d}_c{c:02d}.avi" for g in (1, 2) for c in (1, 2)]
    (lists / "testlist01.txt").write_text("\n".join(test) + "\n")
    return root


def test_ucf101_official_format_and_problems(ucf: Path) -> None:
    train = load_ucf101(ucf, split=1, subset="train")
    assert train.class_names == ["ApplyEyeMakeup", "HandstandPushups"]
    assert len(train) == 8 and train.labels == [0] * 4 + [1] * 4
    assert all(p.is_absolute() and p.is_file() for p in train.paths)
    assert train.paths[4].name == "v_HandStandPushups_g08_c01.avi"  # case quirk resolved
    assert train.groups[0] == "ApplyEyeMakeup_g08" and len(set(train.groups)) == 4
    assert len(train.problems) == 3
    joined = "\n".join(train.problems)
    assert "trainlist01.txt:9" in joined and "not found" in joined
    assert "unknown class 'Archery'" in joined and "cannot parse" in joined
    test = load_ucf101(ucf, split=1, subset="test")
    assert len(test) == 8 and not test.problems and set(test.labels) == {0, 1}
    assert not set(train.paths) & set(test.paths)
    assert len(load_ucf101(ucf, subset="all")) == 16


def test_ucf101_unusable_layout_raises(tmp_path: Path, ucf: Path) -> None:
    with pytest.raises(DatasetError, match="not a UCF101 layout"):
        load_ucf101(tmp_path / "nothing")
    with pytest.raises(DatasetError, match="testlist02.txt: split file missing"):
        load_ucf101(ucf, split=2, subset="test")
    with pytest.raises(ValueError, match="subset"):
        load_ucf101(ucf, subset="validation")


def test_ucf101_reencoded_videos_are_found(ucf: Path) -> None:
    for p in (ucf / "UCF-101").rglob("*.avi"):
        p.rename(p.with_suffix(".mp4"))
    assert len(load_ucf101(ucf).paths) == 8


@pytest.fixture
def hmdb(tmp_path: Path) -> Path:
    root = tmp_path / "hmdb"
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for cls in ("brush_hair", "wave"):
        lines = []
        for i, code in enumerate("1120"):
            name = f"Movie{i // 2}_{cls}_f_nm_np1_ba_goo_{i}.avi"
            touch(root / "hmdb51" / cls / name)
            lines.append(f"{name} {code} ")
        if cls == "wave":
            lines += ["ghost_clip_0.avi 1 ", "broken-line"]
        for split in (1, 2, 3):
            (splits / f"{cls}_test_split{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def test_hmdb51_codes_groups_and_problems(hmdb: Path) -> None:
    train = load_hmdb51(hmdb, split=1, subset="train")
    test = load_hmdb51(hmdb, split=1, subset="test")
    assert train.class_names == ["brush_hair", "wave"]
    assert len(train) == 4 and len(test) == 2  # code 0 (unused) is in neither
    assert train.groups[0] == "brush_hair/Movie0_brush_hair_f_nm_np1_ba_goo"
    assert train.groups[0] == train.groups[1]
    assert len(train.problems) == 2 and "wave_test_split1.txt:5" in train.problems[0]
    assert hmdb_group("April_09_brush_hair_u_nm_np1_ba_goo_10") == "April_09_brush_hair_u_nm_np1_ba_goo"
    assert detect_layout(hmdb) == "hmdb51" and len(open_dataset(hmdb, subset="test")) == 2


def test_folder_layouts(tmp_path: Path) -> None:
    for cls, n in (("b_cls", 2), ("a_cls", 3)):
        for i in range(n):
            touch(tmp_path / "flat" / cls / f"clip{i}.mp4")
    touch(tmp_path / "flat" / "a_cls" / "notes.txt")
    (tmp_path / "flat" / "empty").mkdir()
    index = load_folder(tmp_path / "flat")
    assert index.class_names == ["a_cls", "b_cls"] and index.labels == [0, 0, 0, 1, 1]
    assert index.groups[0] == "a_cls/clip0"
    assert detect_layout(tmp_path / "flat") == "folder"
    with pytest.raises(DatasetError, match="no test split"):
        open_dataset(tmp_path / "flat", subset="test")
    with pytest.raises(DatasetError, match="no class folders"):
        load_folder(tmp_path / "flat" / "empty")
    touch(tmp_path / "tt" / "train" / "x" / "1.avi")
    touch(tmp_path / "tt" / "test" / "y" / "2.avi")
    assert open_dataset(tmp_path / "tt", subset="test").class_names == ["y"]
    both = open_dataset(tmp_path / "tt", subset="all")
    assert both.class_names == ["x", "y"] and both.labels == [0, 1]


def make_index(n_classes: int = 3, groups: int = 6, clips: int = 3) -> VideoIndex:
    paths, labels, gs = [], [], []
    for c in range(n_classes):
        for g in range(groups):
            for k in range(clips):
                paths.append(Path(f"/x/c{c}/v_g{g:02d}_c{k:02d}.avi"))
                labels.append(c)
                gs.append(f"c{c}_g{g:02d}")
    return VideoIndex(Path("/x"), paths, labels, [f"c{c}" for c in range(n_classes)], gs)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_group_val_split_never_straddles_and_is_deterministic(fraction: float) -> None:
    index = make_index()
    train, val = group_val_split(index, fraction, seed=3)
    assert not set(train.groups) & set(val.groups)
    assert len(train) + len(val) == len(index)
    for c in range(3):  # every class keeps train videos and gets some validation
        assert c in train.labels and c in val.labels
    assert abs(len(val) / len(index) - fraction) <= 1 / 6 + 1e-9
    again = group_val_split(index, fraction, seed=3)[1]
    assert again.paths == val.paths
    assert any(group_val_split(index, fraction, seed=s)[1].paths != val.paths for s in range(4, 10))


def test_label_fraction_stratified() -> None:
    index = make_index(groups=4, clips=5)  # 20 per class
    small = label_fraction(index, 0.1, seed=0)
    assert np.bincount(small.labels).tolist() == [2, 2, 2]
    assert label_fraction(index, 0.001, seed=0).labels == [0, 1, 2]  # at least one per class
    assert label_fraction(index, 0.1, seed=0).paths == small.paths
    assert label_fraction(index, 1.0, seed=5).paths == index.paths


def test_subset_summary_and_frame_counts() -> None:
    index = make_index(n_classes=2, groups=1, clips=2)

    class FakeStore:
        def build(self, paths, *, progress=True, workers=1):
            return SimpleNamespace(ok=index.paths[1:], skipped=[(index.paths[0], "moov atom not found")])

        def num_frames(self, path):
            return 10 + int(path.stem[-1])

    counted, skipped = index.with_frame_counts(FakeStore())
    assert skipped == [(index.paths[0], "moov atom not found")]
    assert counted.num_frames == [11, 10, 11] and len(counted) == 3
    text = counted.summary()
    assert "c0" in text and "total" in text and "32" in text
    assert index.subset([3, 0]).labels == [1, 0]
    with pytest.raises(ValueError, match="same length"):
        VideoIndex(Path("/x"), [Path("/a")], [], ["c"], [])


def test_with_frame_counts_on_a_real_store(tmp_path: Path) -> None:
    from vsslkit.data.store import FrameStore
    from vsslkit.data.writer import write_video

    rng = np.random.default_rng(0)
    write_video(tmp_path / "d" / "a" / "ok.mp4", rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8))
    touch(tmp_path / "d" / "b" / "bad.mp4")
    counted, skipped = load_folder(tmp_path / "d").with_frame_counts(FrameStore(tmp_path / "store"))
    assert counted.num_frames == [12] and counted.paths[0].name == "ok.mp4"
    assert len(skipped) == 1 and skipped[0][0].name == "bad.mp4" and skipped[0][1]
