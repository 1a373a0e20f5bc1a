"""Dataset preparation on tiny fake archives in the official formats (zip, tar.gz, rar)."""

from __future__ import annotations

import hashlib
import io
import struct
import tarfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from vsslkit.data.datasets import open_dataset
from vsslkit.data.prepare import (
    PrepareError,
    archive_kind,
    extract,
    prepare_hmdb51,
    prepare_ucf101,
    rar_backend,
    verify_checksum,
)
from vsslkit.data.stores import recorded_format
from vsslkit.data.writer import write_video

UCF_CLASSES = ("ApplyEyeMakeup", "Archery")
HMDB_CLASSES = ("brush_hair", "wave")


def write_rar4(path: Path, files: dict[str, bytes]) -> Path:
    """A real RAR 4 archive with stored (uncompressed) members, as WinRAR writes them.

    No rar *writer* exists on a free system, so the test writes the format itself: marker
    block, archive header, one file header (CRC16 of the header, CRC32 of the data) per member,
    end-of-archive block; paths use Windows separators like the official archives.
    """

    def block(kind: int, flags: int, body: bytes) -> bytes:
        rest = struct.pack("<BHH", kind, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(rest) & 0xFFFF) + rest

    t = time.localtime(1_300_000_000)
    dos = (t.tm_year - 1980) << 25 | t.tm_mon << 21 | t.tm_mday << 16 | t.tm_hour << 11 | t.tm_min << 5 | t.tm_sec // 2
    out = bytearray(b"Rar!\x1a\x07\x00") + block(0x73, 0, struct.pack("<HI", 0, 0))
    for name, data in files.items():
        encoded = name.replace("/", "\\").encode()
        header = struct.pack("<IIBIIBBHI", len(data), len(data), 2, zlib.crc32(data), dos, 20, 0x30, len(encoded), 0x20)
        out += block(0x74, 0x8000, header + encoded) + data
    out += block(0x7B, 0x4000, b"")
    path.write_bytes(bytes(out))
    return path


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(20, 32, 32, 3), dtype=np.uint8)
    return write_video(tmp_path_factory.mktemp("clip") / "clip.avi", frames).read_bytes()


def ucf_members(clip: bytes) -> tuple[dict[str, bytes], dict[str, bytes]]:
    videos, train, test = {}, [], []
    for c, cls in enumerate(UCF_CLASSES, 1):
        for g in (1, 8):
            name = f"{cls}/v_{cls}_g{g:02d}_c01.avi"
            videos[f"UCF-101/{name}"] = clip
            (test.append(name) if g == 1 else train.append(f"{name} {c}"))
    splits = {"ucfTrainTestlist/classInd.txt": "".join(f"{i} {c}\r\n" for i, c in enumerate(UCF_CLASSES, 1)).encode()}
    for k in (1, 2, 3):
        splits[f"ucfTrainTestlist/trainlist0{k}.txt"] = ("\r\n".join(train) + "\r\n").encode()
        splits[f"ucfTrainTestlist/testlist0{k}.txt"] = ("\r\n".join(test) + "\r\n").encode()
    return videos, splits


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_prepare_ucf101_from_tar_and_zip(tmp_path: Path, clip_bytes: bytes) -> None:
    videos, splits = ucf_members(clip_bytes)
    videos["UCF-101/Archery/v_Archery_g08_c01.avi"] = b"truncated garbage"  # unreadable: skipped by name
    video_archive = write_tar(tmp_path / "UCF101.tar.gz", videos)
    split_archive = write_zip(tmp_path / "UCF101TrainTestSplits-RecognitionTask.zip", splits)
    md5 = hashlib.md5(video_archive.read_bytes()).hexdigest()
    lines: list[str] = []
    result = prepare_ucf101(tmp_path / "ucf", videos=video_archive, splits=split_archive, videos_md5=md5,
                            store_dir=tmp_path / "store", progress=False, log=lines.append)
    assert f"md5(UCF101.tar.gz) = {md5}" in lines
    assert any(line.startswith("md5(UCF101TrainTestSplits") for line in lines)  # always printed
    assert result.num_videos == 4 and result.stored == 3 and len(result.skipped) == 1
    assert result.skipped[0][0].name == "v_Archery_g08_c01.avi"
    assert "skipped" in result.summary() and "official count 13320" in result.summary()
    assert len(list((tmp_path / "store").glob("*-jpeg90.jpgs"))) == 3  # JPEG is the default for datasets
    assert recorded_format(tmp_path / "ucf") == {"format": "jpeg", "quality": 90, "short_side": 128}
    index = open_dataset(tmp_path / "ucf", split=2, subset="train")
    assert index.class_names == list(UCF_CLASSES) and len(index) == 2 and not index.problems
    # idempotent: a second run extracts nothing again
    lines.clear()
    prepare_ucf101(tmp_path / "ucf", videos=video_archive, splits=split_archive, build_store=False,
                   progress=False, log=lines.append)
    assert sum("already extracted" in line for line in lines) == 2


def test_checksum_mismatch_names_the_file(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "a.zip", {"x.txt": b"x"})
    with pytest.raises(PrepareError, match=r"a\.zip: md5 mismatch"):
        verify_checksum(archive, md5="0" * 32, log=lambda _m: None)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert verify_checksum(archive, sha256=sha.upper(), log=lambda _m: None)["sha256"] == sha


def test_unsafe_or_unknown_archives_are_refused(tmp_path: Path) -> None:
    evil = write_zip(tmp_path / "evil.zip", {"../outside.txt": b"x"})
    with pytest.raises(PrepareError, match="unsafe member path"):
        extract(evil, tmp_path / "out", log=lambda _m: None)
    assert not (tmp_path / "outside.txt").exists()
    with pytest.raises(PrepareError, match="unsupported archive type"):
        archive_kind(tmp_path / "UCF101.7z")
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    with pytest.raises(PrepareError, match="broken.zip: not a valid zip"):
        extract(tmp_path / "broken.zip", tmp_path / "out", log=lambda _m: None)


@pytest.mark.skipif(rar_backend() is None, reason="no rar extraction tool (unrar, unar, 7z or bsdtar) installed")
def test_prepare_hmdb51_from_nested_rars(tmp_path: Path, clip_bytes: bytes) -> None:
    pytest.importorskip("rarfile")
    inner = tmp_path / "inner"
    inner.mkdir()
    outer_members, split_members = {}, {}
    for cls in HMDB_CLASSES:
        names = [f"Movie_{cls}_f_nm_np1_ba_goo_{i}.avi" for i in range(3)]
        rar = write_rar4(inner / f"{cls}.rar", {f"{cls}/{n}": clip_bytes for n in names})
        outer_members[f"{cls}.rar"] = rar.read_bytes()
        for k in (1, 2, 3):
            split_members[f"testTrainMulti_7030_splits/{cls}_test_split{k}.txt"] = (
                f"{names[0]} 1 \n{names[1]} 2 \n{names[2]} 0 \n".encode())
    videos = write_rar4(tmp_path / "hmdb51_org.rar", outer_members)
    splits = write_rar4(tmp_path / "test_train_splits.rar", split_members)
    result = prepare_hmdb51(tmp_path / "hmdb", videos=videos, splits=splits, store_dir=tmp_path / "store",
                            progress=False, log=lambda _m: None)
    assert result.num_videos == 4 and result.stored == 4 and not result.skipped and not result.problems
    assert not (tmp_path / "hmdb" / "_hmdb51_archives").exists()
    train = open_dataset(tmp_path / "hmdb", subset="train")
    assert train.layout == "hmdb51" and train.class_names == list(HMDB_CLASSES) and len(train) == 2
    assert train.paths[0].read_bytes() == clip_bytes


@pytest.mark.skipif(rar_backend() is None, reason="no rar extraction tool installed")
def test_rar_with_escaping_path_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("rarfile")
    evil = write_rar4(tmp_path / "evil.rar", {"../../escape.txt": b"x"})
    with pytest.raises(PrepareError, match="unsafe member path"):
        extract(evil, tmp_path / "out", log=lambda _m: None)
    (tmp_path / "fake.rar").write_bytes(b"Rar! but not really")
    with pytest.raises(PrepareError, match="fake.rar: not a valid rar"):
        extract(tmp_path / "fake.rar", tmp_path / "out", log=lambda _m: None)


@pytest.mark.parametrize("backend", ["unrar", "unar", "7z", "7zz", "bsdtar"])
def test_each_installed_rar_backend_extracts(tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from vsslkit.data import prepare

    pytest.importorskip("rarfile")
    if shutil.which(backend) is None:
        pytest.skip(f"{backend} not installed")
    monkeypatch.setattr(prepare, "rar_backend", lambda: backend)
    archive = write_rar4(tmp_path / "a.rar", {"cls/v1.avi": b"one", "cls/sub/v2.avi": b"two"})
    out = extract(archive, tmp_path / "out", log=lambda _m: None)
    assert (out / "cls" / "v1.avi").read_bytes() == b"one" and (out / "cls" / "sub" / "v2.avi").read_bytes() == b"two"
