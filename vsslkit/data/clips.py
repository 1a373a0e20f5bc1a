"""Gather the frames of sampled plans into uint8 clips, and turn batches of them into model input.

A training example is a video plus a frame-index plan plus labels: `ClipDataset` asks a task's
`sample(num_frames, rng)` for plans and labels and reads those frames from a frame source
(`FrameStore`: `.read(path, indices)`). Every random choice of item `i` in epoch `e` comes from
`np.random.default_rng([seed, e, i])`, so the same seed gives the same clips whatever the number
of DataLoader workers or the order they run in. `EpochSampler` makes the order itself
reproducible and resumable at the exact next batch, also when sharded across DDP ranks.

With `decode_on="device"` (a JPEG store) the loader carries the frames still JPEG-encoded
(`EncodedClips`, ~10x fewer bytes through worker pipes and to the GPU) and `prepare_batch`
decodes the whole batch in one `torchvision.io.decode_jpeg` call on the training device: nvJPEG
on CUDA, libjpeg-turbo on the CPU (the same library `cv2` decodes with in the CPU path).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from vsslkit.data import transforms as T
from vsslkit.plans import ItemContext, Sample


class FrameSource(Protocol):
    """What `ClipDataset` needs from a frame store."""

    def read(self, video_path: Path, indices: np.ndarray) -> np.ndarray: ...


DECODE_ON = ("cpu", "device")


@dataclass
class EncodedClips:
    """A batch's clips as JPEG bytes, decoded by `prepare_batch` on the training device.

    One byte buffer for the whole batch (one shared-memory block from a worker process, not one
    per frame): frame `j` is `data[offsets[j]:offsets[j + 1]]`, clip `i` is the next
    `frames_per_clip[i]` frames.
    """

    data: torch.Tensor  # uint8 (total bytes,)
    offsets: torch.Tensor  # int64 (frames + 1,)
    frames_per_clip: tuple[int, ...]

    @classmethod
    def from_clips(cls, clips: Sequence[Sequence[np.ndarray]]) -> EncodedClips:
        frames = [np.asarray(f, dtype=np.uint8).reshape(-1) for clip in clips for f in clip]
        offsets = np.zeros(len(frames) + 1, dtype=np.int64)
        np.cumsum([len(f) for f in frames], out=offsets[1:])
        data = np.concatenate(frames) if frames else np.zeros(0, dtype=np.uint8)
        return cls(torch.from_numpy(data), torch.from_numpy(offsets), tuple(len(clip) for clip in clips))

    def __len__(self) -> int:
        return len(self.frames_per_clip)

    def decode(self, device: str | torch.device = "cpu") -> torch.Tensor:
        """uint8 `(B, K, h, w, 3)` on `device`, every clip centre-cropped to the smallest (as `collate` does)."""
        from torchvision.io import ImageReadMode, decode_jpeg

        bounds = self.offsets.tolist()
        encoded = [self.data[bounds[j] : bounds[j + 1]] for j in range(len(bounds) - 1)]
        images = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)  # (3, h, w) each
        clips, first = [], 0
        for k in self.frames_per_clip:
            clips.append(torch.stack(images[first : first + k]).permute(0, 2, 3, 1))
            first += k
        h = min(c.shape[-3] for c in clips)
        w = min(c.shape[-2] for c in clips)
        return torch.stack([_centre(c, h, w) for c in clips])


SampleFn = Callable[..., "Sample | Sequence[Sample]"]
"""`sample_fn(num_frames, rng, *, epoch, context)`: a task's `sample` (or `same_batch.all_transforms`)."""


class _ReadError(Exception):
    """Internal marker: the frame source failed on this video (the cause is chained)."""


@dataclass(frozen=True)
class ReadFailure:
    """A video whose frames could not be read at run time (it was replaced, not fatal)."""

    path: str
    reason: str
    substitute: str


class ClipDataset(torch.utils.data.Dataset):
    """Clips for every plan of a task's `Sample`, one item per (usable) video.

    Keys accepted by `__getitem__`: an int (uses `self.epoch`, set with `set_epoch`) or an
    `(epoch, index)` pair as yielded by `EpochSampler`; the pair form keeps persistent workers
    correct, because they hold a stale copy of `self.epoch`.

    With `same_batch=True`, `sample_fn` returns a sequence of Samples for one video (e.g. every
    transform of a task, `vsslkit.tasks.same_batch.all_transforms`) and `collate` flattens them
    into the batch, so a batch holds all transformations of the same videos.

    With `decode_on="device"`, `source` must offer `read_encoded` (a `JpegFrameStore`): items and
    batches carry JPEG bytes (`EncodedClips`) that `prepare_batch` decodes on the training device.
    """

    def __init__(
        self,
        videos: Sequence[str | Path],
        labels: Sequence[int] | None,
        num_frames: Sequence[int],
        source: FrameSource,
        sample_fn: SampleFn,
        *,
        seed: int = 0,
        min_frames: int = 1,
        same_batch: bool = False,
        max_retries: int = 3,
        groups: Sequence[str] | None = None,
        flow: FrameSource | None = None,
        flow_clips: Sequence[str] = (),
        decode_on: str = "cpu",
    ):
        if decode_on not in DECODE_ON:
            raise ValueError(f"decode_on must be one of {DECODE_ON}, got {decode_on!r}")
        if decode_on == "device" and not hasattr(source, "read_encoded"):
            raise ValueError(f"decode_on='device' needs a store of JPEG frames (read_encoded); {type(source).__name__} "
                             "holds decoded frames")
        if decode_on == "device" and flow_clips:
            raise ValueError(f"decode_on='device' does not carry optical flow (plans {tuple(flow_clips)}); "
                             "use decode_on='cpu'")
        self.decode_on = decode_on
        if labels is not None and len(labels) != len(videos):
            raise ValueError(f"{len(videos)} videos but {len(labels)} labels")
        if len(num_frames) != len(videos):
            raise ValueError(f"{len(videos)} videos but {len(num_frames)} frame counts")
        if groups is not None and len(groups) != len(videos):
            raise ValueError(f"{len(videos)} videos but {len(groups)} groups")
        self.source, self.sample_fn, self.seed = source, sample_fn, int(seed)
        # optical flow of the named plans (a `vsslkit.data.flow_cache.FlowCache`), for tasks whose
        # labels come from motion: it travels beside the frames and is cropped with them
        self.flow, self.flow_clips = flow, tuple(flow_clips)
        if self.flow_clips and flow is None:
            raise ValueError(f"plans {self.flow_clips} need optical flow, but no flow source was given")
        self.same_batch, self.max_retries = same_batch, max_retries
        self.epoch = 0
        self.videos: list[Path] = []
        self.labels: list[int] = []
        self.num_frames: list[int] = []
        self.groups: list[str] | None = None if groups is None else []
        self.skipped: list[tuple[Path, str]] = []
        for k, (path, n) in enumerate(zip(videos, num_frames)):
            if int(n) < min_frames:
                self.skipped.append((Path(path), f"{int(n)} frames, the task needs at least {min_frames}"))
                continue
            self.videos.append(Path(path))
            self.labels.append(-1 if labels is None else int(labels[k]))
            self.num_frames.append(int(n))
            if self.groups is not None:
                self.groups.append(str(groups[k]))
        if not self.videos:
            raise ValueError(f"no usable video: all {len(self.skipped)} are too short (first: {self.skipped[:1]})")

    def __len__(self) -> int:
        return len(self.videos)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        epoch, index = (int(key[0]), int(key[1])) if isinstance(key, (tuple, list)) else (self.epoch, int(key))
        failures: list[ReadFailure] = []
        candidate = index
        for attempt in range(self.max_retries + 1):
            try:
                item = self._load(epoch, index, candidate)
                item["failures"] = failures
                return item
            except _ReadError as err:  # only reading may fail per video; sampler bugs propagate
                exc = err.__cause__
                # Substitute a deterministic other video: same seed, same substitute.
                pick = int(np.random.default_rng([self.seed, epoch, index, attempt + 1]).integers(max(1, len(self) - 1)))
                substitute = pick + 1 if len(self) > 1 and pick >= candidate else pick
                failures.append(ReadFailure(str(self.videos[candidate]), f"{type(exc).__name__}: {exc}",
                                            str(self.videos[substitute])))
                candidate = substitute
        raise RuntimeError(f"{self.videos[index]}: reading failed {self.max_retries + 1} times in a row; "
                           f"last failures: {[(f.path, f.reason) for f in failures]}")

    def context(self, video: int) -> ItemContext:
        """What a sampler may know about the dataset beyond video `video` (cross-video plans)."""
        return ItemContext(video, tuple(self.num_frames), None if self.groups is None else tuple(self.groups))

    def _load(self, epoch: int, index: int, video: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, epoch, index])
        samples = self.sample_fn(self.num_frames[video], rng, epoch=epoch, context=self.context(video))
        samples = list(samples) if self.same_batch else [samples]
        if not samples:
            raise ValueError(f"{self.videos[video]}: the sampler returned no sample")
        names = list(samples[0].plans)
        frames: dict[str, list[Any]] = {name: [] for name in names}
        flows: dict[str, list[torch.Tensor]] = {name: [] for name in names if name in self.flow_clips}
        for sample in samples:
            if list(sample.plans) != names:
                raise ValueError(f"{self.videos[video]}: samples of one video have different plans "
                                 f"({list(sample.plans)} vs {names})")
            for name, plan in sample.plans.items():
                if plan.video is not None and not 0 <= plan.video < len(self):
                    raise ValueError(f"plan {name!r} names video {plan.video}, the dataset has {len(self)}")
                path = self.videos[video if plan.video is None else plan.video]
                try:
                    if self.decode_on == "device":
                        clip = self.source.read_encoded(path, plan.indices)  # JPEG bytes, decoded in prepare_batch
                    else:
                        clip = self.source.read(path, plan.indices)
                except Exception as exc:
                    raise _ReadError() from exc
                if len(clip) != len(plan.indices):
                    raise _ReadError() from RuntimeError(f"read {len(clip)} frames, asked for {len(plan.indices)}")
                frames[name].append(clip if self.decode_on == "device" else torch.from_numpy(np.ascontiguousarray(clip)))
                if name in flows:
                    try:
                        flows[name].append(torch.from_numpy(np.ascontiguousarray(self.flow.read(path, plan.indices))))
                    except Exception as exc:
                        raise _ReadError() from exc
        labels = {k: [s.labels[k] for s in samples] for k in samples[0].labels}
        labels["class"] = [self.labels[video]] * len(samples)
        extras = {k: [s.extras[k] for s in samples] for k in samples[0].extras}
        item = {"frames": frames, "labels": labels, "extras": extras, "video": [video] * len(samples)}
        if flows:
            item["flow"] = flows
        return item


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack items into uint8 `{name: (B, K, h, w, 3)}` per named plan; `same_batch` items are flattened.

    Videos of different aspect ratios have different stored sizes: every clip is centre-cropped
    to the batch's smallest height and width first (the random crop comes later, per clip).
    Labels become LongTensors (int classes), float tensors (float labels) or stacked arrays;
    extras become float tensors. Items of `decode_on="device"` give `EncodedClips` (centre-cropped
    after decoding).
    """
    frames: dict[str, Any] = {}
    for name in items[0]["frames"]:
        clips = [c for it in items for c in it["frames"][name]]
        if not isinstance(clips[0], torch.Tensor):  # JPEG bytes per frame
            frames[name] = EncodedClips.from_clips(clips)
            continue
        h = min(c.shape[-3] for c in clips)
        w = min(c.shape[-2] for c in clips)
        frames[name] = torch.stack([_centre(c, h, w) for c in clips])
    labels = {k: _label_tensor([v for it in items for v in it["labels"][k]]) for k in items[0]["labels"]}
    extras = {k: torch.from_numpy(np.stack([v for it in items for v in it["extras"][k]]).astype(np.float32))
              for k in items[0]["extras"]}
    video = torch.tensor([v for it in items for v in it["video"]], dtype=torch.long)
    failures = [f for it in items for f in it["failures"]]
    batch = {"frames": frames, "labels": labels, "extras": extras, "video": video, "failures": failures}
    if "flow" in items[0]:  # optical flow: centre-cropped to its clip's frames, (B, K-1, h, w, 2)
        batch["flow"] = {name: torch.stack([_centre(f, *frames[name].shape[-3:-1]) for it in items
                                            for f in it["flow"][name]]) for name in items[0]["flow"]}
    return batch


def _label_tensor(values: list[Any]) -> torch.Tensor:
    """int classes -> int64 `(B,)`, floats -> float32 `(B,)`, arrays -> stacked `(B, ...)`."""
    if all(isinstance(v, (int, np.integer, bool, np.bool_)) for v in values):
        return torch.tensor([int(v) for v in values], dtype=torch.long)
    if all(isinstance(v, (float, np.floating)) for v in values):
        return torch.tensor([float(v) for v in values], dtype=torch.float32)
    array = np.stack([np.asarray(v) for v in values])
    return torch.from_numpy(array.astype(np.int64 if np.issubdtype(array.dtype, np.integer) else np.float32))


def _centre(clip: torch.Tensor, h: int, w: int) -> torch.Tensor:
    top, left = (clip.shape[-3] - h) // 2, (clip.shape[-2] - w) // 2
    return clip[..., top : top + h, left : left + w, :]


class EpochSampler(torch.utils.data.Sampler):
    """Seeded permutation per epoch, sharded like `DistributedSampler`, resumable mid-epoch.

    Yields `(epoch, index)` pairs (see `ClipDataset`). The permutation of epoch `e` is
    `default_rng([seed, e]).permutation(n)`, padded by wrapping (or truncated with `drop_last`)
    to a multiple of `world_size`; rank `r` takes every `world_size`-th entry from `r`.
    `state_dict(consumed)` records how many of this rank's items the loop has *consumed*
    (the DataLoader prefetches, so the sampler cannot know); `load_state_dict` makes the next
    `__iter__` continue right after them.
    """

    def __init__(self, n: int, *, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False):
        if n < 1:
            raise ValueError("EpochSampler needs at least one item")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.n, self.seed, self.shuffle = n, int(seed), shuffle
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch = 0
        self.start = 0
        total = (n // world_size) * world_size if drop_last else math.ceil(n / world_size) * world_size
        if total == 0:
            raise ValueError(f"{n} items cannot be split over {world_size} ranks with drop_last")
        self.per_rank = total // world_size

    def __len__(self) -> int:
        return self.per_rank

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def indices(self, epoch: int) -> np.ndarray:
        """This rank's full index order for `epoch`."""
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
        total = self.per_rank * self.world_size
        order = np.resize(order, total) if total > self.n else order[:total]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, start = self.epoch, self.start
        self.start = 0  # a resume offset applies once
        for i in self.indices(epoch)[start:]:
            yield (epoch, int(i))

    def state_dict(self, consumed: int = 0) -> dict[str, int]:
        return {"epoch": self.epoch, "position": int(consumed), "seed": self.seed, "n": self.n,
                "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if int(state["n"]) != self.n or int(state["world_size"]) != self.world_size or int(state["seed"]) != self.seed:
            raise ValueError(f"sampler state is for n={state['n']}, world_size={state['world_size']}, "
                             f"seed={state['seed']}; this run has n={self.n}, world_size={self.world_size}, "
                             f"seed={self.seed}")
        self.epoch, self.start = int(state["epoch"]), int(state["position"])


def prepare_batch(
    batch: dict[str, Any],
    *,
    crop_size: int,
    train: bool,
    residual: bool = False,
    flip: bool = True,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
) -> dict[str, Any]:
    """uint8 frames → `{"clips": {name: float (B, 3, T, H, W)}, "labels", "extras", "augment"}`.

    Train: clip-consistent random resized crop (+ horizontal flip unless `flip=False`: a flip
    turns "move right" into "move left", so direction-labelled data must not flip) drawn from
    `generator`, plan by plan in the batch's order; eval: centre crop. `augment[name]` records
    each clip's crop box and flip (train only) for tasks whose labels depend on them; when the batch
    carries optical flow for a clip (`batch["flow"]`), `augment[name]["flow"]` is that flow cropped,
    resampled and flipped exactly like the clip (`transforms.crop_flip_flow`; eval: centre crop).
    With `residual`, plans hold K+1 frames and the clips are their K differences. On CUDA the
    uint8 frames travel first (pinned, non-blocking; 4x fewer bytes than float) and augmentation
    runs on the GPU. `EncodedClips` (`decode_on="device"`) are decoded on `device` first.
    """
    device = torch.device(device)
    if train and generator is None:
        raise ValueError("prepare_batch(train=True) needs a torch.Generator for the random crops")
    cuda = device.type == "cuda"
    clips: dict[str, torch.Tensor] = {}
    augment: dict[str, dict[str, torch.Tensor]] = {}
    for name, frames in batch["frames"].items():
        if isinstance(frames, EncodedClips):
            frames = frames.decode(device)
        elif cuda:
            frames = (frames if frames.is_pinned() else frames.pin_memory()).to(device, non_blocking=True)
        flow = batch.get("flow", {}).get(name)
        if train:
            # The generator must live on the device the crop parameters are drawn on (CPU).
            x, augment[name] = T.random_crop_flip_float(frames, crop_size, generator, flip=flip)
            if flow is not None:
                augment[name]["flow"] = T.crop_flip_flow(flow.to(device), augment[name], crop_size)
        else:
            x = T.to_float_clips(T.center_crop(frames, crop_size))
            if flow is not None:
                augment[name] = {"flow": T.crop_flip_flow(flow.to(device), None, crop_size)}
        if residual:
            x = T.residual_frames(x)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        clips[name] = x
    labels = {k: v.to(device, non_blocking=cuda) for k, v in batch["labels"].items()}
    extras = {k: v.to(device, non_blocking=cuda) for k, v in batch.get("extras", {}).items()}
    return {"clips": clips, "labels": labels, "extras": extras, "augment": augment}


@dataclass
class BatchPreparer:
    """`prepare_batch` with the loop's settings; the crops of step `s` come from seed `[seed, s, rank]`.

    Seeding per step (rather than carrying one generator along) makes a resumed run draw the same
    crops as an uninterrupted one without storing generator state.
    """

    crop_size: int
    residual: bool = False
    flip: bool = True
    seed: int = 0
    device: str | torch.device = "cpu"
    channels_last: bool = False
    rank: int = 0

    def __call__(self, batch: dict[str, Any], *, step: int, train: bool = True) -> dict[str, Any]:
        generator = None
        if train:
            state = np.random.SeedSequence([self.seed, step, self.rank]).generate_state(2, dtype=np.uint32)
            generator = torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))
        return prepare_batch(batch, crop_size=self.crop_size, train=train, residual=self.residual,
                             flip=self.flip, generator=generator, device=self.device, channels_last=self.channels_last)
