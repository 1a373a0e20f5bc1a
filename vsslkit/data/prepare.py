"""From downloaded archives to a ready dataset: download, verify, extract, build the frame store.

UCF101 ships as `UCF101.rar` + `UCF101TrainTestSplits-RecognitionTask.zip`; HMDB51 as
`hmdb51_org.rar` (a rar of 51 per-class rars) + `test_train_splits.rar`. Rar archives are listed
with the `rarfile` package (path safety, passwords) and extracted by the first command-line
backend found (`unrar`, `unar`, `7z`/`7zz`, `bsdtar`): one call per archive, because per-file
extraction of a solid rar decompresses it again for every file. Zip and tar(.gz/.bz2/.xz) use the
standard library. Every step is idempotent: an archive already extracted (same size and mtime)
is not extracted again, and the frame store rebuilds only what changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tarfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vsslkit.atomic import write_text_atomic
from vsslkit.data.datasets import HMDB_SPLIT_DIR, UCF_SPLIT_DIR, VideoIndex, load_hmdb51, load_ucf101
from vsslkit.data.store import default_store_dir
from vsslkit.errors import UsageError

Log = Callable[[str], None]
OFFICIAL_COUNTS = {"ucf101": 13320, "hmdb51": 6766}
ARCHIVE_SUFFIXES = (".rar", ".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
# name -> command prefix that extracts the archive appended next into the folder appended last
_RAR_BACKENDS: tuple[tuple[str, Callable[[Path, Path], list[str]]], ...] = (
    ("unrar", lambda a, d: ["unrar", "x", "-o+", "-idq", str(a), f"{d}{os.sep}"]),
    ("unar", lambda a, d: ["unar", "-q", "-f", "-D", "-o", str(d), str(a)]),
    ("7z", lambda a, d: ["7z", "x", "-y", "-bd", f"-o{d}", str(a)]),
    ("7zz", lambda a, d: ["7zz", "x", "-y", "-bd", f"-o{d}", str(a)]),
    ("bsdtar", lambda a, d: ["bsdtar", "-x", "-f", str(a), "-C", str(d)]),
)


class PrepareError(UsageError, RuntimeError):
    """A preparation step failed on `path`; `str()` is `"<path>: <reason>"` (the CLI prints it, exit 2)."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(path, reason)
        self.path, self.reason = Path(path), reason



# ---------------------------------------------------------------------------------------------
# Download and checksums


def is_url(source: str | os.PathLike) -> bool:
    return str(source).startswith(("http://", "https://", "ftp://"))


def download(url: str, dest_dir: str | os.PathLike, *, progress: bool = True, log: Log = print) -> Path:
    """Stream `url` into `dest_dir` (file name from the URL); an existing complete file is reused.

    Written to `<name>.part` and renamed when complete, so an interrupted download is never
    mistaken for a finished one (it restarts from zero: no resume).
    """
    from tqdm.auto import tqdm

    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = url.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "download"
    dest = dest_dir / name
    if dest.is_file():
        log(f"using existing download {dest}")
        return dest
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with open(part, "wb") as f, tqdm(total=total, unit="B", unit_scale=True, desc=name,
                                              disable=not progress) as bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
    except OSError as exc:
        raise PrepareError(url, f"download failed: {exc}") from exc
    os.replace(part, dest)
    return dest


def file_hash(path: str | os.PathLike, algorithm: str = "md5", *, chunk: int = 1 << 20) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_checksum(
    path: str | os.PathLike, *, md5: str | None = None, sha256: str | None = None, log: Log = print
) -> dict[str, str]:
    """Compute (and always print) the archive's hashes; raise `PrepareError` on a mismatch.

    MD5 is always printed so a user can compare it with the publisher's list by eye.
    """
    path = Path(path)
    computed = {"md5": file_hash(path, "md5")}
    if sha256:
        computed["sha256"] = file_hash(path, "sha256")
    for algo, value in computed.items():
        log(f"{algo}({path.name}) = {value}")
    for algo, expected in (("md5", md5), ("sha256", sha256)):
        if expected and expected.strip().lower() != computed[algo]:
            raise PrepareError(path, f"{algo} mismatch: expected {expected.strip().lower()}, got {computed[algo]} "
                               "(corrupt or incomplete download?)")
    return computed


# ---------------------------------------------------------------------------------------------
# Extraction


def archive_kind(path: str | os.PathLike) -> str:
    """"rar", "zip" or "tar" from the file name; anything else raises `PrepareError`."""
    name = Path(path).name.lower()
    if name.endswith(".rar"):
        return "rar"
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(ARCHIVE_SUFFIXES[2:]):  # .tar and its compressed forms
        return "tar"
    raise PrepareError(path, f"unsupported archive type (expected one of {', '.join(ARCHIVE_SUFFIXES)})")


def rar_backend() -> str | None:
    """Name of the first rar extraction tool on PATH, or None."""
    for name, _ in _RAR_BACKENDS:
        if shutil.which(name):
            return name
    return None


def extract(archive: str | os.PathLike, dest: str | os.PathLike, *, log: Log = print) -> Path:
    """Extract `archive` into `dest` (created); skipped when already done for this exact file.

    Member paths that would escape `dest` (absolute, `..`) make the whole archive refused.
    """
    archive, dest = Path(archive).resolve(), Path(dest).resolve()
    if not archive.is_file():
        raise PrepareError(archive, "archive not found")
    kind = archive_kind(archive)
    dest.mkdir(parents=True, exist_ok=True)
    marker = dest / ".vsslkit-extracted" / f"{archive.name}.json"
    stat = archive.stat()
    stamp = {"archive": str(archive), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if marker.is_file() and json.loads(marker.read_text()) == stamp:
        log(f"{archive.name}: already extracted into {dest}")
        return dest
    log(f"extracting {archive.name} into {dest} ...")
    if kind == "zip":
        _extract_zip(archive, dest)
    elif kind == "tar":
        _extract_tar(archive, dest)
    else:
        _extract_rar(archive, dest)
    marker.parent.mkdir(exist_ok=True)
    write_text_atomic(marker, json.dumps(stamp))
    return dest


def _check_members(archive: Path, names: list[str]) -> None:
    for name in names:
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or (parts and parts[0].endswith(":")):
            raise PrepareError(archive, f"unsafe member path {name!r} (would be written outside the target folder)")


def _extract_zip(archive: Path, dest: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            _check_members(archive, zf.namelist())
            # the file type in a member's Unix mode (high 16 bits of external_attr; 0 when not recorded):
            # only files and folders are extracted, a symlink or device entry refuses the archive
            bad = [i.filename for i in zf.infolist()
                   if stat.S_IFMT(i.external_attr >> 16) not in (0, stat.S_IFREG, stat.S_IFDIR)]
            if bad:
                raise PrepareError(archive, f"links or special files are not extracted: {bad[:3]}")
            zf.extractall(dest)
    except zipfile.BadZipFile as exc:
        raise PrepareError(archive, f"not a valid zip archive ({exc})") from exc


def _extract_tar(archive: Path, dest: Path) -> None:
    try:
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            _check_members(archive, [m.name for m in members])
            bad = [m.name for m in members if not (m.isfile() or m.isdir())]
            if bad:
                raise PrepareError(archive, f"links or special files are not extracted: {bad[:3]}")
            if hasattr(tarfile, "data_filter"):
                tf.extractall(dest, filter="data")
            else:  # Python without extraction filters: members were checked above
                tf.extractall(dest)
    except tarfile.TarError as exc:
        raise PrepareError(archive, f"not a valid tar archive ({exc})") from exc


def _extract_rar(archive: Path, dest: Path) -> None:
    try:
        import rarfile
    except ImportError as exc:
        raise PrepareError(archive, "rar archives need the 'rarfile' package: pip install rarfile") from exc
    try:
        with rarfile.RarFile(archive) as rf:
            if rf.needs_password():
                raise PrepareError(archive, "rar archive is password-protected")
            names = rf.namelist()
    except rarfile.Error as exc:
        raise PrepareError(archive, f"not a valid rar archive ({exc})") from exc
    _check_members(archive, names)
    backend = rar_backend()
    if backend is None:
        raise PrepareError(archive, "no rar extraction tool found; install one of unrar, unar, 7z or bsdtar "
                           "(Debian: apt-get install unar  or  apt-get install libarchive-tools)")
    cmd = dict(_RAR_BACKENDS)[backend](archive, dest)
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise PrepareError(archive, f"{backend} failed (exit {result.returncode}): {' | '.join(tail)}")
    missing = [n for n in names if not n.endswith(("/", "\\")) and not (dest / n.replace("\\", "/")).exists()]
    files = [n for n in names if not n.endswith(("/", "\\"))]
    if files and len(missing) == len(files):
        raise PrepareError(archive, f"{backend} reported success but extracted none of {len(files)} files "
                           f"(e.g. {missing[0]})")


# ---------------------------------------------------------------------------------------------
# Dataset preparation


@dataclass
class PrepareResult:
    """What a preparation produced: the dataset root, its videos, what was skipped and why."""

    dataset: str
    root: Path
    num_videos: int
    store_dir: Path | None
    stored: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    hashes: dict[str, dict[str, str]] = field(default_factory=dict)

    def summary(self) -> str:
        official = OFFICIAL_COUNTS.get(self.dataset)
        lines = [f"{self.dataset} ready at {self.root}: {self.num_videos} videos in the official splits"
                 + (f" (official count {official})" if official else "")]
        if self.store_dir is not None:
            lines.append(f"frame store {self.store_dir}: {self.stored} stored, {len(self.skipped)} skipped")
        lines += [f"  skipped {p}: {reason}" for p, reason in self.skipped]
        if self.problems:
            lines.append(f"{len(self.problems)} split problem(s):")
            lines += [f"  {p}" for p in self.problems[:20]]
            if len(self.problems) > 20:
                lines.append(f"  ... and {len(self.problems) - 20} more")
        return "\n".join(lines)


def _fetch(source: str | os.PathLike, out_dir: Path, md5: str | None, sha256: str | None, progress: bool,
           log: Log) -> tuple[Path, dict[str, str]]:
    path = download(str(source), out_dir / "downloads", progress=progress, log=log) if is_url(source) else Path(source)
    if not path.is_file():
        raise PrepareError(path, "archive not found")
    return path, verify_checksum(path, md5=md5, sha256=sha256, log=log)


def _all_split_videos(loader: Callable[..., VideoIndex], root: Path) -> tuple[list[Path], list[str]]:
    """Union of the videos of all three official splits, with every split's problems."""
    paths: dict[Path, None] = {}
    problems: list[str] = []
    for split in (1, 2, 3):
        index = loader(root, split=split, subset="all")
        paths.update(dict.fromkeys(index.paths))
        problems += [p for p in index.problems if p not in problems]
    return list(paths), problems


def _finish(dataset: str, root: Path, loader: Callable[..., VideoIndex], *, store_dir: str | os.PathLike | None,
            build_store: bool, short_side: int, workers: int, progress: bool, log: Log,
            hashes: dict[str, dict[str, str]], store_format: str, jpeg_quality: int) -> PrepareResult:
    paths, problems = _all_split_videos(loader, root)
    result = PrepareResult(dataset, root, len(paths), None, problems=problems, hashes=hashes)
    if build_store:
        from vsslkit.data.stores import open_store, record_format

        result.store_dir = Path(store_dir) if store_dir is not None else default_store_dir()
        log(f"building the {store_format} frame store (short side {short_side}) in {result.store_dir} ...")
        store = open_store(result.store_dir, format=store_format, short_side=short_side, quality=jpeg_quality)
        report = store.build(paths, progress=progress, workers=workers)
        result.stored, result.skipped = len(report.ok), list(report.skipped)
        record_format(root, format=store_format, quality=jpeg_quality, short_side=short_side)
    log(result.summary())
    return result


def prepare_ucf101(
    out_dir: str | os.PathLike, *, videos: str | os.PathLike, splits: str | os.PathLike,
    videos_md5: str | None = None, splits_md5: str | None = None, videos_sha256: str | None = None,
    splits_sha256: str | None = None, store_dir: str | os.PathLike | None = None, build_store: bool = True,
    short_side: int = 128, workers: int = 1, progress: bool = True, log: Log = print,
    store_format: str = "jpeg", jpeg_quality: int = 90,
) -> PrepareResult:
    """UCF101: `videos` (UCF101.rar, path or URL) + `splits` (the RecognitionTask zip) → `out_dir`.

    Result: `out_dir/UCF-101/<Class>/*.avi` and `out_dir/ucfTrainTestlist/`, loadable with
    `open_dataset(out_dir)`, plus a frame store (`store_format`: JPEG by default, ~10x smaller
    than raw) of every video of the three splits; `vsslkit pretrain/finetune` find its format.
    """
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for role, source, md5, sha in (("videos", videos, videos_md5, videos_sha256),
                                   ("splits", splits, splits_md5, splits_sha256)):
        archive, hashes[role] = _fetch(source, out, md5, sha, progress, log)
        extract(archive, out, log=log)
    if not (out / UCF_SPLIT_DIR / "classInd.txt").is_file():
        found = sorted(p.relative_to(out).as_posix() for p in out.glob("**/classInd.txt"))
        if len(found) != 1:
            raise PrepareError(out, f"the splits archive did not give {UCF_SPLIT_DIR}/classInd.txt (found {found})")
        shutil.move(str((out / found[0]).parent), out / UCF_SPLIT_DIR)
    return _finish("ucf101", out, load_ucf101, store_dir=store_dir, build_store=build_store, short_side=short_side,
                   workers=workers, progress=progress, log=log, hashes=hashes, store_format=store_format,
                   jpeg_quality=jpeg_quality)


def prepare_hmdb51(
    out_dir: str | os.PathLike, *, videos: str | os.PathLike, splits: str | os.PathLike,
    videos_md5: str | None = None, splits_md5: str | None = None, videos_sha256: str | None = None,
    splits_sha256: str | None = None, store_dir: str | os.PathLike | None = None, build_store: bool = True,
    short_side: int = 128, workers: int = 1, progress: bool = True, log: Log = print,
    store_format: str = "jpeg", jpeg_quality: int = 90,
) -> PrepareResult:
    """HMDB51: `videos` (hmdb51_org.rar: a rar of per-class rars) + `splits` (test_train_splits.rar).

    Result: `out_dir/hmdb51/<class>/*.avi` and `out_dir/testTrainMulti_7030_splits/`. The outer
    archive may also hold class folders directly (a repackaged copy); both are accepted. The
    per-class archives are unpacked in `out_dir/_hmdb51_archives` and deleted once extracted.
    """
    from tqdm.auto import tqdm

    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    hashes = {}
    archive, hashes["videos"] = _fetch(videos, out, videos_md5, videos_sha256, progress, log)
    staging = extract(archive, out / "_hmdb51_archives", log=log)
    video_dir = out / "hmdb51"
    inner = sorted(p for p in staging.rglob("*") if p.is_file() and p.name.lower().endswith(ARCHIVE_SUFFIXES))
    if inner:
        for sub in tqdm(inner, desc="class archives", unit="archive", disable=not progress):
            extract(sub, video_dir, log=lambda _msg: None)
    else:
        class_dirs = [p for p in staging.rglob("*") if p.is_dir() and any(p.glob("*.avi"))]
        if not class_dirs:
            raise PrepareError(archive, "holds neither per-class archives nor class folders of .avi videos")
        video_dir.mkdir(exist_ok=True)
        for d in class_dirs:
            if not (video_dir / d.name).exists():
                shutil.move(str(d), video_dir / d.name)
    shutil.rmtree(staging)  # copies of what the user's archive holds; a re-run extracts them again
    archive, hashes["splits"] = _fetch(splits, out, splits_md5, splits_sha256, progress, log)
    extract(archive, out, log=log)
    if not (out / HMDB_SPLIT_DIR).is_dir():
        found = sorted({p.parent for p in out.glob("**/*_test_split1.txt")})
        if len(found) != 1:
            raise PrepareError(out, f"the splits archive did not give {HMDB_SPLIT_DIR}/ (found {found})")
        shutil.move(str(found[0]), out / HMDB_SPLIT_DIR)
    return _finish("hmdb51", out, load_hmdb51, store_dir=store_dir, build_store=build_store, short_side=short_side,
                   workers=workers, progress=progress, log=log, hashes=hashes, store_format=store_format,
                   jpeg_quality=jpeg_quality)
