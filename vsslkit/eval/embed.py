"""Your own videos: one feature vector per video of any folder, and each video's nearest neighbours.

Every other feature path in the kit goes through a dataset split; this one takes plain files and
folders. It is the retrieval protocol unchanged (`extract_video_features`: N uniformly spaced
centre-cropped clips, a layer pooled and averaged; `standardise_with_gallery` + `cosine_topk`),
so an embedding file and `vsslkit retrieve` agree on what "similar" means.

An embedding file (`.npz`, written atomically) holds the features, the absolute video paths,
their frame counts and clip strides, every video that was skipped with its reason, the
checkpoint's sha256 and the protocol JSON (an `eval.results.Protocol`), so a new video can later
be embedded exactly like the stored ones (`backbone_from_protocol`) and a changed checkpoint is
noticed instead of silently mixing two feature spaces.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import nn

from vsslkit.data.datasets import VIDEO_EXTENSIONS
from vsslkit.data.store import FrameStore, default_store_dir
from vsslkit.eval.features import extract_video_features, fitting_strides
from vsslkit.eval.pooling import POOLINGS
from vsslkit.eval.results import Protocol, checkpoint_fields
from vsslkit.eval.retrieval import cosine_topk, standardise_with_gallery
from vsslkit.models import build_backbone
from vsslkit.models.backbones import LAYER_NAMES
from vsslkit.models.weights import LoadReport, load_backbone_weights

FORMAT = "vsslkit-embedding-1"
_VIDEOS_PER_CALL = 4  # videos per extract_video_features call: the progress bar's step


class EmbedError(ValueError):
    """A user's input cannot be embedded (missing path, no videos, bad features file); names the input."""


@dataclass(frozen=True)
class EmbedSettings:
    """The backbone and the retrieval protocol's clip settings (everything that changes the numbers)."""

    backbone: str = "tiny_r3d"
    width: float = 1.0
    norm: str = "bn"
    tgn_group_frames: int = 2  # TGN's frames per group g; stored only when norm is "tgn"
    clip_len: int = 16
    crop_size: int = 112
    residual: bool = False
    stride: int = 1  # nominal; a short video gets the largest stride that fits (stored per video)
    clips_per_video: int = 10
    layer: str = "pool5"
    pooling: str = "avg"
    short_side: int = 128  # frame store resolution the crops are taken from

    def __post_init__(self) -> None:
        if self.clips_per_video < 1 or self.clip_len < 1 or self.stride < 1 or self.crop_size < 1:
            raise EmbedError(f"clips per video, clip length, stride and crop size must be >= 1, got "
                             f"{self.clips_per_video}, {self.clip_len}, {self.stride}, {self.crop_size}")
        if self.layer not in LAYER_NAMES:
            raise EmbedError(f"unknown layer {self.layer!r}; choose from {', '.join(LAYER_NAMES)}")
        if self.pooling not in POOLINGS:
            raise EmbedError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")

    def protocol(self, *, checkpoint: str | os.PathLike, seed: int, dataset: str, command: str | None = None) -> Protocol:
        """The `Protocol` stored in the embedding file (same record as every result JSON)."""
        return Protocol(task="embedding", dataset=dataset, layer=self.layer, pooling=self.pooling,
                        clips_per_video=self.clips_per_video, crop=self.crop_size, clip_len=self.clip_len,
                        stride=self.stride, residual=self.residual, seed=seed, backbone=self.backbone,
                        command=command, extra={"width": self.width, "norm": self.norm, "short_side": self.short_side,
                                                **({"tgn_group_frames": self.tgn_group_frames}
                                                   if self.norm == "tgn" else {})},
                        **checkpoint_fields(checkpoint))

    @classmethod
    def from_protocol(cls, protocol: dict[str, Any]) -> EmbedSettings:
        """Inverse of `protocol` (for embedding a new video like the stored ones)."""
        extra = protocol.get("extra") or {}
        try:
            return cls(backbone=protocol["backbone"], width=float(extra["width"]), norm=extra["norm"],
                       tgn_group_frames=int(extra.get("tgn_group_frames", 2)),
                       clip_len=int(protocol["clip_len"]), crop_size=int(protocol["crop"]),
                       residual=bool(protocol["residual"]), stride=int(protocol["stride"]),
                       clips_per_video=int(protocol["clips_per_video"]), layer=protocol["layer"],
                       pooling=protocol["pooling"], short_side=int(extra["short_side"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbedError(f"incomplete embedding protocol ({type(exc).__name__}: {exc})") from exc


@dataclass
class Embedding:
    """Features of the embedded videos (row i = paths[i]) and what was left out, with why."""

    features: np.ndarray  # (N, D) float32
    paths: list[str]  # absolute
    num_frames: list[int]
    strides: list[int]  # the clip stride each video was embedded at
    protocol: dict[str, Any]  # an eval.results.Protocol as JSON types
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def __post_init__(self) -> None:
        n = len(self.paths)
        if self.features.ndim != 2 or self.features.shape[0] != n or len(self.num_frames) != n or len(self.strides) != n:
            raise ValueError(f"features {self.features.shape}, {n} paths, {len(self.num_frames)} frame counts and "
                             f"{len(self.strides)} strides must agree")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def checkpoint_sha256(self) -> str | None:
        return self.protocol.get("checkpoint_sha256")

    def index_of(self, path: str | os.PathLike) -> int | None:
        """Row of `path` (any spelling of the same file), or None when it is not embedded here."""
        wanted = os.path.abspath(os.fspath(path))
        for i, p in enumerate(self.paths):
            if p == wanted:
                return i
        real = os.path.realpath(wanted)
        for i, p in enumerate(self.paths):
            if os.path.realpath(p) == real:
                return i
        return None


# --------------------------------------------------------------------------- inputs and backbone


def collect_videos(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given, folders searched recursively for video files (sorted); duplicates once.

    A path that does not exist, or a folder with no video file, is the user's mistake: `EmbedError`.
    A named file is taken whatever its extension (an unreadable one is skipped later, by name).
    """
    out: list[Path] = []
    seen: set[str] = set()
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                raise EmbedError(f"{path}: no video files in this folder ({', '.join(VIDEO_EXTENSIONS[:4])}, ...)")
        elif path.is_file():
            found = [path]
        else:
            raise EmbedError(f"{path}: no such file or folder")
        for p in found:
            key = os.path.abspath(p)
            if key not in seen:
                seen.add(key)
                out.append(Path(key))
    if not out:
        raise EmbedError("no videos given")
    return out


def build_embedding_backbone(settings: EmbedSettings, checkpoint: str | os.PathLike, *, seed: int = 0
                             ) -> tuple[nn.Module, LoadReport | None]:
    """The backbone of `settings` with `checkpoint`'s weights ("random": seeded random init).

    The seed is set before building, so `random` (and any tensor a checkpoint lacks) is the same
    network for the same seed.
    """
    torch.manual_seed(seed)
    try:
        net = build_backbone(settings.backbone, width=settings.width, norm=settings.norm,
                             in_frames=settings.clip_len if settings.norm == "tgn" else None,
                             tgn_group_frames=settings.tgn_group_frames)
    except (KeyError, ValueError) as exc:
        raise EmbedError(f"cannot build backbone {settings.backbone!r}: {exc}") from exc
    if str(checkpoint) == "random":
        return net, None
    try:
        return net, load_backbone_weights(net, checkpoint)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise EmbedError(str(exc)) from exc


def backbone_from_protocol(protocol: dict[str, Any]) -> nn.Module:
    """Rebuild the exact backbone an embedding file was made with; refuse if its checkpoint changed."""
    from vsslkit.eval.results import file_sha256

    settings = EmbedSettings.from_protocol(protocol)
    checkpoint = protocol.get("checkpoint")
    if checkpoint is None:
        raise EmbedError("the embedding protocol names no checkpoint")
    if checkpoint != "random":
        if not Path(checkpoint).is_file():
            raise EmbedError(f"{checkpoint}: the checkpoint these features were made with is gone; "
                             "embed the new video together with the others (vsslkit embed)")
        if file_sha256(checkpoint) != protocol.get("checkpoint_sha256"):
            raise EmbedError(f"{checkpoint}: changed since the features were written (sha256 differs); "
                             "re-run vsslkit embed")
    net, _ = build_embedding_backbone(settings, checkpoint, seed=int(protocol.get("seed") or 0))
    return net


def store_for(embedding: Embedding, root: str | os.PathLike | None = None) -> FrameStore:
    """The frame store the embedding's videos were read through (its short side), at `root`
    (default `$VSSLKIT_STORE` or `~/.cache/vsslkit/frames`): where strips are read from."""
    settings = EmbedSettings.from_protocol(embedding.protocol)
    return FrameStore(root if root is not None else default_store_dir(), short_side=settings.short_side)


# --------------------------------------------------------------------------- embedding


def embed_videos(
    paths: Sequence[str | os.PathLike],
    backbone: nn.Module,
    store: FrameStore,
    settings: EmbedSettings,
    *,
    protocol: Protocol | dict[str, Any],
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> Embedding:
    """One feature vector per video through `extract_video_features`; nothing dropped silently.

    Each video is decoded once into `store` (whose short side must be `settings.short_side`);
    an unreadable one, or one shorter than a stride-1 clip, is listed in `Embedding.skipped`
    with its reason and the rest are embedded. A video too short for the nominal stride keeps
    its place with the largest stride that fits (`Embedding.strides`), as in `vsslkit retrieve`.
    """
    from tqdm.auto import tqdm

    if store.short_side != settings.short_side:
        raise ValueError(f"store short side {store.short_side} != settings.short_side {settings.short_side}")
    report = store.build(paths, progress=progress)
    skipped = [(str(p), str(reason)) for p, reason in report.skipped]
    ok = [str(p) for p in report.ok]
    counts = [store.num_frames(p) for p in ok]
    fits = fitting_strides(counts, clip_len=settings.clip_len, stride=settings.stride, residual=settings.residual)
    keep = [i for i, s in enumerate(fits) if s is not None]
    skipped += [(ok[i], (f"{counts[i]} frames: shorter than one clip of {settings.clip_len + int(settings.residual)} "
                 "frames")) for i, s in enumerate(fits) if s is None]
    paths_kept = [ok[i] for i in keep]
    frames_kept = [int(counts[i]) for i in keep]
    strides = [int(fits[i]) for i in keep]  # type: ignore[arg-type]
    chunks = []
    with tqdm(total=len(paths_kept), desc="embed", unit="video", disable=not progress) as bar:
        for start in range(0, len(paths_kept), _VIDEOS_PER_CALL):
            stop = start + _VIDEOS_PER_CALL
            chunks.append(extract_video_features(
                backbone, paths_kept[start:stop], store, num_frames=frames_kept[start:stop],
                clip_len=settings.clip_len, stride=strides[start:stop], clips_per_video=settings.clips_per_video,
                layer=settings.layer, pooling=settings.pooling, crop_size=settings.crop_size,
                residual=settings.residual, batch_size=batch_size, device=device))
            bar.update(len(chunks[-1]))
    dim = chunks[0].shape[1] if chunks else 0
    features = np.concatenate(chunks) if chunks else np.zeros((0, dim), np.float32)
    proto = asdict(protocol) if isinstance(protocol, Protocol) else dict(protocol)
    return Embedding(features.astype(np.float32), paths_kept, frames_kept, strides, proto, skipped)


# --------------------------------------------------------------------------- the file


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Run `write(file)` on a temp file beside `path`, fsync, then rename it over `path`.

    A crash, kill -9 or a full disk leaves the previous file (or none), never a partial one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)  # mkstemp's 0600 would hide the file from other users
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_embedding(path: str | os.PathLike, embedding: Embedding) -> Path:
    """Write `embedding` as `.npz` atomically (temp file, fsync, rename): a crash or a full disk
    leaves the previous file, never half of a new one."""
    arrays = {
        "format": np.array(FORMAT),
        "features": np.asarray(embedding.features, dtype=np.float32),
        "paths": np.array(embedding.paths, dtype=str),
        "num_frames": np.asarray(embedding.num_frames, dtype=np.int64),
        "strides": np.asarray(embedding.strides, dtype=np.int64),
        "skipped_paths": np.array([p for p, _ in embedding.skipped], dtype=str),
        "skipped_reasons": np.array([r for _, r in embedding.skipped], dtype=str),
        "checkpoint_sha256": np.array(embedding.checkpoint_sha256 or ""),
        "protocol": np.array(json.dumps(embedding.protocol, sort_keys=True)),
    }
    atomic_write(path, lambda fh: np.savez(fh, **arrays))
    return Path(path)


def load_embedding(path: str | os.PathLike) -> Embedding:
    """Read a file written by `save_embedding`; anything else raises `EmbedError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise EmbedError(f"{path}: features file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "format" not in data.files or str(data["format"]) != FORMAT:
                raise EmbedError(f"{path}: not a vsslkit embedding file (write one with vsslkit embed)")
            return Embedding(
                features=np.asarray(data["features"], dtype=np.float32),
                paths=[str(p) for p in data["paths"]],
                num_frames=[int(n) for n in data["num_frames"]],
                strides=[int(s) for s in data["strides"]],
                protocol=json.loads(str(data["protocol"])),
                skipped=[(str(p), str(r)) for p, r in zip(data["skipped_paths"], data["skipped_reasons"])],
            )
    except EmbedError:
        raise
    except Exception as exc:
        raise EmbedError(f"{path}: not a readable embedding file ({type(exc).__name__}: {exc})") from exc


# --------------------------------------------------------------------------- neighbours


@dataclass(frozen=True)
class Neighbours:
    """The nearest gallery videos of one query, best first."""

    query: str
    query_row: int | None  # the query's own row in the gallery, None for a video not in it
    rows: np.ndarray  # (k,) gallery rows
    similarities: np.ndarray  # (k,) cosine similarities of the standardised features


def find_neighbours(
    gallery: np.ndarray,
    queries: np.ndarray,
    *,
    k: int = 10,
    self_rows: Sequence[int | None] | None = None,
    exclude_self: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k gallery rows per query by cosine on features standardised with the gallery's statistics.

    The retrieval protocol's own functions (`standardise_with_gallery`, `cosine_topk`, ties by
    gallery index). With `exclude_self`, query i never returns `self_rows[i]` (its own row when it
    is in the gallery). Returns `(rows, similarities)`, each `(Q, min(k, usable gallery))`.
    """
    gallery, queries = np.asarray(gallery), np.asarray(queries)
    if self_rows is not None and len(self_rows) != len(queries):
        raise ValueError(f"{len(queries)} queries but {len(self_rows)} self rows")
    own = [None] * len(queries) if self_rows is None else list(self_rows)
    drop = exclude_self and any(r is not None for r in own)
    usable = len(gallery) - (1 if drop else 0)
    if k < 1 or usable < 1:
        raise EmbedError(f"need k >= 1 and at least one other video, got k={k} and a gallery of {len(gallery)}")
    k = min(k, usable)
    q, g = standardise_with_gallery(queries, gallery)
    rows, sims = cosine_topk(q, g, k + 1 if drop else k)
    if not drop:
        return rows, sims
    out_rows = np.empty((len(rows), k), dtype=np.int64)
    out_sims = np.empty((len(rows), k), dtype=np.float64)
    for i, self_row in enumerate(own):
        keep = rows[i] != self_row if self_row is not None else np.ones(len(rows[i]), bool)
        out_rows[i], out_sims[i] = rows[i][keep][:k], sims[i][keep][:k]
    return out_rows, out_sims


def neighbours_of(embedding: Embedding, queries: Sequence[str | os.PathLike], *, k: int = 10,
                  exclude_self: bool = False, new_features: np.ndarray | None = None) -> list[Neighbours]:
    """Neighbours of each query among `embedding`'s videos.

    A query embedded in the file uses its stored row; the others need their features in
    `new_features` (rows in the order those queries appear; see `embed_videos`).
    """
    rows = [embedding.index_of(q) for q in queries]
    missing = [str(q) for q, r in zip(queries, rows) if r is None]
    extra = np.zeros((0, embedding.features.shape[1]), np.float32) if new_features is None else np.asarray(new_features)
    if len(missing) != len(extra):
        raise EmbedError(f"{len(missing)} queries are not in the features file but {len(extra)} new feature rows "
                         f"were given (first missing: {missing[0] if missing else '-'})")
    feats, j = [], 0
    for r in rows:
        if r is None:
            feats.append(extra[j])
            j += 1
        else:
            feats.append(embedding.features[r])
    idx, sims = find_neighbours(embedding.features, np.stack(feats), k=k, self_rows=rows, exclude_self=exclude_self)
    return [Neighbours(embedding.paths[r] if r is not None else os.path.abspath(os.fspath(q)), r, idx[i], sims[i])
            for i, (q, r) in enumerate(zip(queries, rows))]


def short_names(paths: Sequence[str]) -> list[str]:
    """Paths relative to their common folder ("wave/clip.avi"), for tables and dropdowns."""
    if not paths:
        return []
    parents = [os.path.dirname(p) for p in paths]
    root = os.path.commonpath(parents) if len(set(parents)) > 1 else parents[0]
    return [os.path.relpath(p, root) for p in paths]


def neighbours_table(embedding: Embedding, results: Sequence[Neighbours]) -> str:
    """Plain-text table: one block per query, rank / cosine similarity / video."""
    names = dict(zip(embedding.paths, short_names(embedding.paths)))
    lines: list[str] = []
    for res in results:
        where = "in the features file" if res.query_row is not None else "new video, embedded with the stored protocol"
        lines.append(f"query {names.get(res.query, res.query)} ({where})")
        lines.append(f"{'rank':>4}  {'cosine':>7}  video")
        for rank, (row, sim) in enumerate(zip(res.rows, res.similarities), start=1):
            mark = "  (itself)" if res.query_row is not None and int(row) == res.query_row else ""
            lines.append(f"{rank:>4}  {float(sim):>7.3f}  {names[embedding.paths[int(row)]]}{mark}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"



def folder_agreement(embedding: Embedding) -> dict[str, float | int]:
    """How often a video's nearest other video (leave-one-out) lies in the same folder.

    With one folder per class this is leave-one-out R@1 with the folder as the label. Only
    videos whose folder holds another embedded video can score ("eligible"); `chance` is the
    expected rate over those for a random neighbour ((m - 1) / (N - 1) for a folder of m videos).
    """
    if len(embedding) < 2:
        raise EmbedError(f"leave-one-out needs at least 2 videos, got {len(embedding)}")
    folders = np.array([os.path.dirname(p) for p in embedding.paths])
    rows, _ = find_neighbours(embedding.features, embedding.features, k=1, self_rows=list(range(len(embedding))),
                              exclude_self=True)
    hits = folders[rows[:, 0]] == folders
    sizes = np.array([(folders == f).sum() for f in folders])
    eligible = sizes >= 2
    n = len(embedding)
    return {"videos": n, "folders": len(set(folders.tolist())), "eligible": int(eligible.sum()),
            "hits": int(hits.sum()), "rate_all": float(hits.mean()),
            "rate_eligible": float(hits[eligible].mean()) if eligible.any() else float("nan"),
            "chance_eligible": float(((sizes[eligible] - 1) / (n - 1)).mean()) if eligible.any() else float("nan")}
