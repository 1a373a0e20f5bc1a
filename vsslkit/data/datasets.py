"""Video datasets on disk: UCF101, HMDB51 and class-per-folder layouts, with their official splits.

A `VideoIndex` is a plain list of videos (absolute paths, integer labels, class names, groups).
Loaders never crash on one bad entry: a split line that names a missing file, cannot be parsed
or names an unknown class is collected in `index.problems` (by file and line) and the rest
loads. Only an unusable layout (no split files, no class folders) raises `DatasetError`.

Groups matter for honest validation: UCF101 clips cut from the same long video share a `gXX`
group, and a group must never straddle train and validation.
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from vsslkit.errors import UsageError

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".gif", ".flv", ".wmv")
SUBSETS = ("train", "test", "all")
UCF_SPLIT_DIR = "ucfTrainTestlist"
HMDB_SPLIT_DIR = "testTrainMulti_7030_splits"


class DatasetError(UsageError, ValueError):
    """The layout at `path` is unusable; `str()` is `"<path>: <reason>"` (the CLI prints it, exit 2)."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(path, reason)
        self.path, self.reason = Path(path), reason


@dataclass
class VideoIndex:
    """Videos of one dataset subset: parallel lists of absolute paths, labels and groups.

    `num_frames` is filled by `with_frame_counts`; `problems` lists entries the loader skipped;
    `layout` names the loader that produced it ("ucf101", "hmdb51", "folder").
    """

    root: Path
    paths: list[Path]
    labels: list[int]
    class_names: list[str]
    groups: list[str]
    num_frames: list[int] | None = None
    problems: list[str] = field(default_factory=list)
    layout: str = "folder"

    def __post_init__(self) -> None:
        n = len(self.paths)
        if len(self.labels) != n or len(self.groups) != n or (self.num_frames is not None and len(self.num_frames) != n):
            raise ValueError(f"{self.root}: paths, labels, groups (and num_frames) must have the same length")
        bad = [lab for lab in self.labels if not 0 <= lab < len(self.class_names)]
        if bad:
            raise ValueError(f"{self.root}: labels {sorted(set(bad))[:5]} outside 0..{len(self.class_names) - 1}")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, indices: Iterable[int]) -> VideoIndex:
        """A new index with the videos at `indices` (in that order); classes are kept."""
        idx = [int(i) for i in indices]
        return replace(
            self,
            paths=[self.paths[i] for i in idx],
            labels=[self.labels[i] for i in idx],
            groups=[self.groups[i] for i in idx],
            num_frames=None if self.num_frames is None else [self.num_frames[i] for i in idx],
            problems=list(self.problems),
        )

    def with_frame_counts(
        self, store: Any, *, progress: bool = False, workers: int = 1
    ) -> tuple[VideoIndex, list[tuple[Path, str]]]:
        """Build/refresh `store` (a `FrameStore`) for every video; return the usable ones with frame counts.

        Unreadable videos are dropped and returned as `(path, reason)` so the caller reports them.
        """
        report = store.build(self.paths, progress=progress, workers=workers)
        ok = {Path(p) for p in report.ok}
        keep = [i for i, p in enumerate(self.paths) if p in ok]
        out = self.subset(keep)
        out.num_frames = [int(store.num_frames(p)) for p in out.paths]
        return out, [(Path(p), str(reason)) for p, reason in report.skipped]

    def class_counts(self) -> list[int]:
        counts = Counter(self.labels)
        return [counts.get(c, 0) for c in range(self.num_classes)]

    def summary(self) -> str:
        """A readable table: videos (and frames, when known) per class, plus totals and problems."""
        counts = self.class_counts()
        frames = [0] * self.num_classes
        if self.num_frames is not None:
            for lab, n in zip(self.labels, self.num_frames):
                frames[lab] += n
        width = max([len(c) for c in self.class_names] + [5])
        head = f"{'class':<{width}}  videos" + ("   frames" if self.num_frames is not None else "")
        lines = [
            (f"{self.layout} dataset at {self.root}: {len(self)} videos, {self.num_classes} classes, "
            f"{len(set(self.groups))} groups"),
            head,
            "-" * len(head),
        ]
        for c, name in enumerate(self.class_names):
            row = f"{name:<{width}}  {counts[c]:>6}"
            if self.num_frames is not None:
                row += f" {frames[c]:>8}"
            lines.append(row)
        total = f"{'total':<{width}}  {len(self):>6}"
        if self.num_frames is not None:
            total += f" {sum(self.num_frames):>8}"
        lines += ["-" * len(head), total]
        if self.problems:
            lines.append(f"{len(self.problems)} problem(s) while loading; first: {self.problems[0]}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Helpers shared by the loaders


def _video_dir(root: Path, candidates: Sequence[str]) -> Path:
    """The first of `root/<candidate>` that exists, else `root` itself (videos next to the splits)."""
    for name in candidates:
        if (root / name).is_dir():
            return root / name
    return root


class _FileLookup:
    """Finds listed videos despite case differences or a changed extension (re-encoded copies).

    UCF101's lists disagree with its own folders in letter case for one class
    (HandstandPushups / HandStandPushups), and users often convert .avi to .mp4.
    """

    def __init__(self, video_dir: Path):
        self.exact: dict[str, Path] = {}
        self.by_stem: dict[str, Path] = {}
        for dirpath, dirnames, filenames in os.walk(video_dir):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith(".") or not name.lower().endswith(VIDEO_EXTENSIONS):
                    continue
                path = Path(dirpath) / name
                rel = path.relative_to(video_dir).as_posix().lower()
                self.exact.setdefault(rel, path)
                self.by_stem.setdefault(rel.rsplit(".", 1)[0], path)
                self.by_stem.setdefault(name.lower().rsplit(".", 1)[0], path)  # file name alone

    def find(self, rel: str) -> Path | None:
        key = rel.replace("\\", "/").lower()
        if key in self.exact:
            return self.exact[key]
        stem = key.rsplit(".", 1)[0] if "." in key.rsplit("/", 1)[-1] else key
        return self.by_stem.get(stem) or self.by_stem.get(stem.rsplit("/", 1)[-1])


def _check_subset(subset: str, split: int, splits: Sequence[int] = (1, 2, 3)) -> None:
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    if split not in splits:
        raise ValueError(f"split must be one of {tuple(splits)}, got {split!r}")


def _read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


# ---------------------------------------------------------------------------------------------
# UCF101

_UCF_GROUP = re.compile(r"_g(\d+)_c(\d+)", re.IGNORECASE)


def _find_ucf_splits(root: Path) -> Path | None:
    for cand in (root / UCF_SPLIT_DIR, *root.glob(f"*/{UCF_SPLIT_DIR}")):
        if (cand / "classInd.txt").is_file():
            return cand
    return None


def load_ucf101(root: str | os.PathLike, split: int = 1, subset: str = "train") -> VideoIndex:
    """UCF101 (or anything in its layout, like the synthetic set) with official split `split`.

    Expects `root/ucfTrainTestlist/{classInd.txt, trainlist0N.txt, testlist0N.txt}` and class
    folders under `root/UCF-101`, `root/videos` or `root`. `subset="all"` is train + test.
    """
    _check_subset(subset, split)
    root = Path(root).expanduser().resolve()
    split_dir = _find_ucf_splits(root)
    if split_dir is None:
        raise DatasetError(root, f"no {UCF_SPLIT_DIR}/classInd.txt: not a UCF101 layout")
    problems: list[str] = []
    class_names = _parse_class_ind(split_dir / "classInd.txt", problems)
    if not class_names:
        raise DatasetError(split_dir / "classInd.txt", "no usable class lines ('<number> <ClassName>')")
    class_of = {c.lower(): i for i, c in enumerate(class_names)}
    video_dir = _video_dir(root, ("UCF-101", "UCF101", "videos"))
    lookup = _FileLookup(video_dir)

    list_files = []
    if subset in ("train", "all"):
        list_files.append(split_dir / f"trainlist0{split}.txt")
    if subset in ("test", "all"):
        list_files.append(split_dir / f"testlist0{split}.txt")
    paths: list[Path] = []
    labels: list[int] = []
    groups: list[str] = []
    seen: set[Path] = set()
    for list_file in list_files:
        if not list_file.is_file():
            raise DatasetError(list_file, "split file missing")
        lines = _read_lines(list_file)
        if not any(line.strip() for line in lines):
            problems.append(f"{list_file.name}: empty split file (an interrupted write? rebuild the dataset)")
        for lineno, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line:
                continue
            where = f"{list_file.name}:{lineno}"
            parts = line.split()
            rel = parts[0]
            if len(parts) > 2 or "/" not in rel.replace("\\", "/"):
                problems.append(f"{where}: cannot parse {line!r} (expected 'Class/video.avi [label]')")
                continue
            folder = rel.replace("\\", "/").split("/")[0]
            label = class_of.get(folder.lower())
            if label is None:
                problems.append(f"{where}: unknown class {folder!r} (not in classInd.txt)")
                continue
            if len(parts) == 2:
                if not parts[1].isdigit():
                    problems.append(f"{where}: cannot parse label {parts[1]!r}")
                    continue
                if int(parts[1]) - 1 != label:
                    problems.append(f"{where}: label {parts[1]} disagrees with folder {folder!r} ({label + 1})")
                    continue
            path = lookup.find(rel)
            if path is None:
                problems.append(f"{where}: video {rel} not found under {video_dir}")
                continue
            if path in seen:
                problems.append(f"{where}: {rel} listed twice")
                continue
            seen.add(path)
            m = _UCF_GROUP.search(path.stem)
            group = f"{class_names[label]}_g{int(m.group(1)):02d}" if m else f"{class_names[label]}/{path.stem}"
            paths.append(path)
            labels.append(label)
            groups.append(group)
    return VideoIndex(root, paths, labels, class_names, groups, problems=problems, layout="ucf101")


def _parse_class_ind(path: Path, problems: list[str]) -> list[str]:
    """classInd.txt: '<1-based number> <ClassName>' per line → names ordered by number."""
    by_number: dict[int, str] = {}
    for lineno, raw in enumerate(_read_lines(path), 1):
        parts = raw.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].isdigit():
            problems.append(f"{path.name}:{lineno}: cannot parse {raw.strip()!r}")
            continue
        number = int(parts[0])
        if number in by_number:
            problems.append(f"{path.name}:{lineno}: class number {number} repeated")
            continue
        by_number[number] = parts[1]
    numbers = sorted(by_number)
    if numbers and numbers != list(range(1, len(numbers) + 1)):
        raise DatasetError(path, f"class numbers must be 1..N without gaps, got {numbers[:10]}...")
    return [by_number[n] for n in numbers]


# ---------------------------------------------------------------------------------------------
# HMDB51

_HMDB_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>\d)\.txt$")
_HMDB_CODES = {"train": ("1",), "test": ("2",), "all": ("1", "2")}


def _find_hmdb_splits(root: Path) -> Path | None:
    for cand in (root / HMDB_SPLIT_DIR, *root.glob(f"*/{HMDB_SPLIT_DIR}")):
        if cand.is_dir() and any(cand.glob("*_test_split*.txt")):
            return cand
    return None


def hmdb_group(stem: str) -> str:
    """HMDB51 group: the clip name without its trailing `_<n>` clip number (same source shot)."""
    return re.sub(r"_\d+$", "", stem)


def load_hmdb51(root: str | os.PathLike, split: int = 1, subset: str = "train") -> VideoIndex:
    """HMDB51 with official split `split` (per-class `<class>_test_splitN.txt`: 1 train, 2 test, 0 unused).

    Split files live in `root/testTrainMulti_7030_splits`; class folders of videos under
    `root/hmdb51`, `root/videos` or `root`. Classes are the split files' class names, sorted.
    """
    _check_subset(subset, split)
    root = Path(root).expanduser().resolve()
    split_dir = _find_hmdb_splits(root)
    if split_dir is None:
        raise DatasetError(root, f"no {HMDB_SPLIT_DIR}/<class>_test_split<N>.txt files: not an HMDB51 layout")
    files = {}
    for f in split_dir.iterdir():
        m = _HMDB_SPLIT_FILE.match(f.name)
        if m and int(m.group("split")) == split:
            files[m.group("cls")] = f
    if not files:
        raise DatasetError(split_dir, f"no split files for split {split}")
    class_names = sorted(files)
    video_dir = _video_dir(root, ("hmdb51", "hmdb51_org", "videos"))
    lookup = _FileLookup(video_dir)
    problems: list[str] = []
    paths: list[Path] = []
    labels: list[int] = []
    groups: list[str] = []
    wanted = _HMDB_CODES[subset]
    for label, cls in enumerate(class_names):
        list_file = files[cls]
        lines = _read_lines(list_file)
        if not any(line.strip() for line in lines):
            problems.append(f"{list_file.name}: empty split file (an interrupted write? rebuild the dataset)")
        for lineno, raw in enumerate(lines, 1):
            parts = raw.split()
            if not parts:
                continue
            where = f"{list_file.name}:{lineno}"
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                problems.append(f"{where}: cannot parse {raw.strip()!r} (expected 'video.avi 0|1|2')")
                continue
            if parts[1] not in wanted:
                continue
            path = lookup.find(f"{cls}/{parts[0]}")
            if path is None:
                problems.append(f"{where}: video {cls}/{parts[0]} not found under {video_dir}")
                continue
            paths.append(path)
            labels.append(label)
            groups.append(f"{cls}/{hmdb_group(path.stem)}")
    return VideoIndex(root, paths, labels, class_names, groups, problems=problems, layout="hmdb51")


# ---------------------------------------------------------------------------------------------
# Folder per class


def load_folder(root: str | os.PathLike) -> VideoIndex:
    """`root/<class>/<video>`: classes are the sorted sub-folders holding videos; group = class/stem.

    Videos nested deeper inside a class folder belong to that class.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(root, "not a folder")
    per_class: dict[str, list[Path]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        videos = sorted(_FileLookup(sub).exact.values())
        if videos:
            per_class[sub.name] = videos
    if not per_class:
        raise DatasetError(root, f"no class folders containing videos ({', '.join(VIDEO_EXTENSIONS[:4])}, ...)")
    class_names = sorted(per_class)
    paths, labels, groups = [], [], []
    for label, cls in enumerate(class_names):
        for path in per_class[cls]:
            paths.append(path)
            labels.append(label)
            groups.append(f"{cls}/{path.stem}")
    return VideoIndex(root, paths, labels, class_names, groups, layout="folder")


def detect_layout(root: str | os.PathLike) -> str:
    """"ucf101", "hmdb51", "split_folders" (root/train + root/test) or "folder"."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(root, "dataset folder does not exist")
    if _find_ucf_splits(root) is not None:
        return "ucf101"
    if _find_hmdb_splits(root) is not None:
        return "hmdb51"
    if (root / "train").is_dir() and any((root / name).is_dir() for name in ("test", "val")):
        return "split_folders"
    return "folder"


def open_dataset(root: str | os.PathLike, split: int = 1, subset: str = "train") -> VideoIndex:
    """Load `root` whatever its layout (UCF101, HMDB51, train/test folders, one folder per class).

    A plain class-per-folder dataset has no test split: `subset="train"` or `"all"` gives every
    video (carve validation with `group_val_split`); `"test"` raises `DatasetError`.
    """
    layout = detect_layout(root)
    if layout == "ucf101":
        return load_ucf101(root, split, subset)
    if layout == "hmdb51":
        return load_hmdb51(root, split, subset)
    _check_subset(subset, split, splits=(split,))
    root = Path(root).expanduser().resolve()
    if layout == "split_folders":
        test_dir = root / "test" if (root / "test").is_dir() else root / "val"
        parts = {"train": [root / "train"], "test": [test_dir], "all": [root / "train", test_dir]}[subset]
        indexes = [load_folder(p) for p in parts]
        if len(indexes) == 1:
            return indexes[0]
        return _merge_folder_indexes(root, indexes)
    if subset == "test":
        raise DatasetError(root, "a folder-per-class dataset has no test split (use subset='all' and group_val_split)")
    return load_folder(root)


def _merge_folder_indexes(root: Path, indexes: list[VideoIndex]) -> VideoIndex:
    class_names = sorted(set().union(*(ix.class_names for ix in indexes)))
    pos = {c: i for i, c in enumerate(class_names)}
    paths, labels, groups = [], [], []
    for ix in indexes:
        paths += ix.paths
        labels += [pos[ix.class_names[lab]] for lab in ix.labels]
        groups += ix.groups
    return VideoIndex(root, paths, labels, class_names, groups, layout="folder")


# ---------------------------------------------------------------------------------------------
# Splitting


def group_val_split(index: VideoIndex, val_fraction: float, seed: int) -> tuple[VideoIndex, VideoIndex]:
    """Hold out about `val_fraction` of each class as whole groups: no group straddles the split.

    Deterministic for a seed. A class with a single group stays entirely in train.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    members: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(index.groups):
        members[g].append(i)
    by_class: dict[int, list[str]] = defaultdict(list)
    for g, idx in members.items():
        majority = Counter(index.labels[i] for i in idx).most_common(1)[0][0]
        by_class[majority].append(g)
    val_groups: set[str] = set()
    for label in sorted(by_class):
        groups = sorted(by_class[label])
        if len(groups) < 2:
            continue
        total = sum(len(members[g]) for g in groups)
        target = val_fraction * total
        taken = 0
        for j in rng.permutation(len(groups)):
            if taken >= target or len(val_groups & set(groups)) == len(groups) - 1:
                break
            if taken > 0 and abs(taken + len(members[groups[j]]) - target) > abs(taken - target):
                continue
            val_groups.add(groups[j])
            taken += len(members[groups[j]])
    val = [i for i in range(len(index)) if index.groups[i] in val_groups]
    train = [i for i in range(len(index)) if index.groups[i] not in val_groups]
    return index.subset(train), index.subset(val)


def label_fraction(index: VideoIndex, fraction: float, seed: int) -> VideoIndex:
    """Keep `fraction` of each class's videos (at least one per class); deterministic for a seed."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    labels = np.asarray(index.labels, dtype=np.int64)
    for label in range(index.num_classes):
        idx = np.flatnonzero(labels == label)
        if len(idx) == 0:
            continue
        n = max(1, round(fraction * len(idx)))
        keep += idx[rng.permutation(len(idx))[:n]].tolist()
    return index.subset(sorted(keep))
