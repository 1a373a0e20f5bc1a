"""ClipDataset, collate, EpochSampler and prepare_batch with an in-memory frame source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vsslkit.data.clips import BatchPreparer, ClipDataset, EpochSampler, collate, prepare_batch
from vsslkit.plans import Sample, constant_plan


class MemorySource:
    """Frame t of video v has channel 0 = (v * 50 + t) % 256 everywhere, so a clip shows its indices."""

    def __init__(self, counts: dict[str, int], size: tuple[int, int] = (20, 24), broken: set[str] = frozenset()):
        self.counts, self.size, self.broken = counts, size, set(broken)
        self.reads: list[tuple[str, list[int]]] = []

    def num_frames(self, path) -> int:
        return self.counts[str(path)]

    def read(self, path, indices) -> np.ndarray:
        path = str(path)
        if path in self.broken:
            raise OSError("corrupt file")
        v = sorted(self.counts).index(path)
        idx = np.asarray(indices)
        if idx.max() >= self.counts[path]:
            raise IndexError(f"{path}: frame {idx.max()} out of range")
        self.reads.append((path, idx.tolist()))
        out = np.zeros((len(idx), *self.size, 3), dtype=np.uint8)
        out[..., 0] = ((v * 50 + idx) % 256)[:, None, None]
        out[..., 1] = (np.arange(self.size[1]) * 10)[None, None, :]  # texture, so crops differ
        out[..., 2] = (np.arange(self.size[0]) * 7)[None, :, None]
        return out


def speed_sample(num_frames: int, rng: np.random.Generator, **_) -> Sample:
    stride = int(rng.integers(1, 3))
    return Sample({"clip": constant_plan(num_frames, 4, stride, rng)}, {"speed": stride - 1})


def two_clip_sample(num_frames: int, rng: np.random.Generator, **_) -> Sample:
    return Sample({"a": constant_plan(num_frames, 4, 1, rng), "b": constant_plan(num_frames, 4, 2, rng)}, {"pair": 1},
                  {"theta": np.eye(2, 3)})


def clip_of(item):
    """The one clip of a one-sample, one-plan item."""
    (clips,) = item["frames"].values()
    return clips[0]


def make(counts=None, **kw):
    counts = counts or {f"/v/{i}.mp4": 12 + i for i in range(6)}
    source = MemorySource(counts, broken=kw.pop("broken", set()))
    paths = sorted(counts)
    labels = kw.pop("labels", list(range(len(paths))))
    ds = ClipDataset(paths, labels, [counts[p] for p in paths], source, kw.pop("sample_fn", speed_sample), **kw)
    return ds, source


def test_item_is_a_function_of_seed_epoch_and_index():
    ds, _ = make(seed=3)
    a, b = ds[(1, 2)], ds[(1, 2)]
    assert torch.equal(clip_of(a), clip_of(b)) and a["labels"] == b["labels"]
    ds.set_epoch(1)
    assert torch.equal(clip_of(ds[2]), clip_of(a))
    other_epoch = [clip_of(ds[(e, 2)])[:, 0, 0, 0].tolist() for e in range(6)]
    assert len({tuple(x) for x in other_epoch}) > 1
    ds2, _ = make(seed=4)
    assert any(not torch.equal(clip_of(ds2[(1, i)]), clip_of(ds[(1, i)])) for i in range(len(ds)))


def test_item_contents_match_the_plan():
    ds, source = make(seed=0)
    item = ds[(0, 4)]
    clip = clip_of(item)
    assert clip.dtype == torch.uint8 and clip.shape == (4, 20, 24, 3)
    path, indices = source.reads[-1]
    assert path == "/v/4.mp4" and item["video"] == [4]
    assert clip[:, 0, 0, 0].tolist() == [(4 * 50 + i) % 256 for i in indices]
    stride = indices[1] - indices[0]
    assert item["labels"] == {"speed": [stride - 1], "class": [4]}


def test_short_videos_are_skipped_and_reported():
    ds, _ = make({"/v/a.mp4": 5, "/v/b.mp4": 30, "/v/c.mp4": 9}, labels=[0, 1, 2], min_frames=10)
    assert len(ds) == 1 and ds.videos == [Path("/v/b.mp4")] and ds.labels == [1]
    assert [p.name for p, _ in ds.skipped] == ["a.mp4", "c.mp4"]
    assert "5 frames" in ds.skipped[0][1] and "10" in ds.skipped[0][1]
    with pytest.raises(ValueError, match="no usable video"):
        make({"/v/a.mp4": 5}, labels=[0], min_frames=10)


def test_unreadable_video_is_substituted_deterministically_and_reported():
    ds, _ = make(broken={"/v/2.mp4"}, seed=1)
    a, b = ds[(0, 2)], ds[(0, 2)]
    assert a["video"] != [2] and a["video"] == b["video"]
    assert [(f.path, f.substitute) for f in a["failures"]] == [("/v/2.mp4", f"/v/{a['video'][0]}.mp4")]
    assert "corrupt file" in a["failures"][0].reason
    batch = collate([ds[(0, i)] for i in range(len(ds))])
    assert len(batch["failures"]) == 1


def test_sampler_bugs_are_not_swallowed_as_read_failures():
    def bad(num_frames, rng, **_):
        return Sample({"clip": constant_plan(num_frames, 40, 1, rng)})

    ds, _ = make(sample_fn=bad)
    with pytest.raises(ValueError, match="needs 40 frames"):
        ds[(0, 0)]


def test_collate_stacks_and_crops_to_common_size():
    ds, _ = make(sample_fn=two_clip_sample, labels=None)
    items = [ds[(0, i)] for i in range(3)]
    items[1]["frames"] = {k: [f[:, 1:, :-2] for f in v] for k, v in items[1]["frames"].items()}  # a narrower video
    batch = collate(items)
    assert {k: f.shape for k, f in batch["frames"].items()} == {"a": (3, 4, 19, 22, 3), "b": (3, 4, 19, 22, 3)}
    assert batch["labels"]["class"].tolist() == [-1, -1, -1] and batch["labels"]["pair"].dtype == torch.long
    assert batch["extras"]["theta"].shape == (3, 2, 3) and batch["extras"]["theta"].dtype == torch.float32
    assert batch["video"].tolist() == [0, 1, 2]


def test_same_batch_items_are_flattened():
    def all_strides(num_frames, rng, **_):
        return [Sample({"clip": constant_plan(num_frames, 4, s, rng)}, {"speed": s - 1}) for s in (1, 2, 3)]

    ds, _ = make(sample_fn=all_strides, same_batch=True)
    batch = collate([ds[(0, i)] for i in range(2)])
    assert batch["frames"]["clip"].shape == (6, 4, 20, 24, 3)
    assert batch["labels"]["speed"].tolist() == [0, 1, 2, 0, 1, 2]
    assert batch["labels"]["class"].tolist() == [0, 0, 0, 1, 1, 1]
    assert batch["video"].tolist() == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_output_is_independent_of_worker_count(workers):
    ds, _ = make(seed=5)
    ref = [ds[key] for key in EpochSampler(len(ds), seed=9)]
    loader = torch.utils.data.DataLoader(ds, batch_size=2, sampler=EpochSampler(len(ds), seed=9),
                                         collate_fn=collate, num_workers=workers)
    got = torch.cat([b["frames"]["clip"] for b in loader])
    assert torch.equal(got, torch.stack([clip_of(r) for r in ref]))


def test_sampler_shards_cover_the_epoch_and_resume_mid_epoch():
    full = EpochSampler(10, seed=2)
    full.set_epoch(3)
    order = [i for _, i in full]
    assert sorted(order) == list(range(10)) and all(e == 3 for e, _ in full)
    shards = [EpochSampler(10, seed=2, rank=r, world_size=3) for r in range(3)]
    for s in shards:
        s.set_epoch(3)
    got = [[i for _, i in s] for s in shards]
    assert all(len(g) == 4 for g in got) and {i for g in got for i in g} == set(range(10))
    assert [got[r][k] for k in range(3) for r in range(3)] == order[:9]  # rank-interleaved global order
    resumed = EpochSampler(10, seed=2)
    resumed.load_state_dict(full.state_dict(consumed=6))
    assert [i for _, i in resumed] == order[6:]
    assert len([i for _, i in resumed]) == 10  # the offset applies to one epoch only
    with pytest.raises(ValueError, match="world_size"):
        EpochSampler(10, seed=2, world_size=2).load_state_dict(full.state_dict(consumed=6))


def test_prepare_batch_train_and_eval():
    ds, _ = make()
    batch = collate([ds[(0, i)] for i in range(4)])
    g = torch.Generator().manual_seed(0)
    out = prepare_batch(batch, crop_size=16, train=True, generator=g)
    assert out["clips"]["clip"].shape == (4, 3, 4, 16, 16) and out["clips"]["clip"].dtype == torch.float32
    assert out["labels"]["speed"].dtype == torch.long
    box, flip = out["augment"]["clip"]["box"], out["augment"]["clip"]["flip"]
    assert box.shape == (4, 3) and flip.dtype == torch.bool and bool((box[:, 2] >= 1).all())
    ev = prepare_batch(batch, crop_size=16, train=False)
    ev2 = prepare_batch(batch, crop_size=16, train=False)
    assert torch.equal(ev["clips"]["clip"], ev2["clips"]["clip"]) and ev["augment"] == {}
    res = prepare_batch(batch, crop_size=16, train=False, residual=True)
    assert res["clips"]["clip"].shape == (4, 3, 3, 16, 16)
    assert torch.allclose(res["clips"]["clip"], ev["clips"]["clip"][:, :, 1:] - ev["clips"]["clip"][:, :, :-1])
    with pytest.raises(ValueError, match="Generator"):
        prepare_batch(batch, crop_size=16, train=True)


def test_batch_preparer_seeds_crops_by_step():
    ds, _ = make()
    batch = collate([ds[(0, i)] for i in range(4)])
    prep = BatchPreparer(crop_size=12, seed=1)
    a, b, c = prep(batch, step=7), prep(batch, step=7), prep(batch, step=8)
    assert torch.equal(a["clips"]["clip"], b["clips"]["clip"]) and not torch.equal(a["clips"]["clip"], c["clips"]["clip"])
