"""`decode_on="device"`: the loader carries JPEG bytes and the training step decodes the batch.

On the CPU the device path runs `torchvision.io.decode_jpeg` with the same code as on CUDA, so
it must give exactly the clips of the CPU path when that path decodes with the same decoder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vsslkit.cli import main
from vsslkit.data.clips import BatchPreparer, ClipDataset, EncodedClips, EpochSampler, collate
from vsslkit.data.stores import open_store
from vsslkit.tasks import make_task

torch.set_num_threads(1)


class DecodedWithTorchvision:
    """The CPU path's frame source, decoding the store's JPEG bytes with torchvision's decoder."""

    def __init__(self, store):
        self.store = store

    def read(self, path, indices) -> np.ndarray:
        from torchvision.io import ImageReadMode, decode_jpeg

        return np.stack([decode_jpeg(torch.from_numpy(e), mode=ImageReadMode.RGB).permute(1, 2, 0).numpy()
                         for e in self.store.read_encoded(path, indices)])


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    """Textured videos in two class folders, two aspect ratios (so collate has to centre-crop)."""
    from vsslkit.data.writer import write_video

    root = tmp_path_factory.mktemp("decode_videos")
    rng = np.random.default_rng(0)
    paths = []
    for k, width in enumerate((40, 48, 40, 56)):
        frames = rng.integers(0, 255, size=(24, 32, width, 3), dtype=np.uint8)
        frames[:, 8:20, 10:24] = rng.integers(100, 255, size=(24, 1, 1, 3), dtype=np.uint8)  # a coloured block
        paths.append(write_video(root / f"class{k % 2}" / f"v{k}.mp4", frames, crf=23))
    return paths


def _loader(paths, store, source, task, *, decode_on: str, workers: int):
    dataset = ClipDataset(paths, None, [store.num_frames(p) for p in paths], source, task.sample, seed=3,
                          min_frames=task.min_frames, decode_on=decode_on)
    return torch.utils.data.DataLoader(dataset, batch_size=2, sampler=EpochSampler(len(dataset), seed=3),
                                       collate_fn=collate, num_workers=workers)


@pytest.mark.parametrize("workers", [0, 1])
def test_device_decode_gives_the_clips_of_the_cpu_path(videos, tmp_path, workers):
    store = open_store(tmp_path / "store", format="jpeg", short_side=32, quality=85)
    store.build(videos, progress=False)
    task = make_task("pace", clip_len=4)
    prepare = BatchPreparer(crop_size=24, seed=5)
    cpu = _loader(videos, store, DecodedWithTorchvision(store), task, decode_on="cpu", workers=0)
    dev = _loader(videos, store, store, task, decode_on="device", workers=workers)
    steps = 0
    for step, (a, b) in enumerate(zip(cpu, dev)):
        (name,) = b["frames"]
        encoded = b["frames"][name]
        assert isinstance(encoded, EncodedClips) and len(encoded) == 2
        assert encoded.data.numel() < a["frames"][name].numel() / 2  # JPEG bytes travel, not decoded frames
        assert torch.equal(encoded.decode("cpu"), a["frames"][name])  # same clips, same centre crop
        pa, pb = prepare(a, step=step), prepare(b, step=step)
        assert torch.equal(pa["clips"][name], pb["clips"][name])
        assert all(torch.equal(pa["labels"][k], pb["labels"][k]) for k in pa["labels"])
        assert torch.equal(pa["augment"][name]["box"], pb["augment"][name]["box"])
        steps += 1
    assert steps == 2
    # and the decoded frames are the JPEG store's frames (the CPU path with its own decoder)
    assert np.abs(DecodedWithTorchvision(store).read(videos[1], [0, 5]).astype(int)
                  - store.read(videos[1], [0, 5]).astype(int)).max() <= 1


def test_a_raw_store_is_refused(videos, tmp_path, capsys):
    raw = open_store(tmp_path / "raw", format="raw", short_side=32)
    task = make_task("pace", clip_len=4)
    with pytest.raises(ValueError, match="decode_on='device' needs a store of JPEG frames"):
        ClipDataset(videos, None, [24] * len(videos), raw, task.sample, decode_on="device")
    with pytest.raises(ValueError, match="decode_on must be one of"):
        ClipDataset(videos, None, [24] * len(videos), raw, task.sample, decode_on="gpu")
    data = videos[0].parent.parent
    code = main(["pretrain", "--data", str(data), "--store", str(tmp_path / "raw"), "--store-format", "raw",
                 "--decode-on", "device", "--out", str(tmp_path / "run"), "--task", "pace", "--steps", "1",
                 "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("vsslkit: --decode-on device: needs a JPEG frame store")
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir())  # refused before storing


@pytest.mark.slow
def test_pretrain_and_finetune_decode_on_the_device(videos, tmp_path):
    data = videos[0].parent.parent
    small = ["--data", str(data), "--store", str(tmp_path / "store"), "--store-format", "jpeg", "--decode-on",
             "device", "--backbone", "r3d_10", "--width", "0.125", "--clip-len", "4", "--size", "24",
             "--short-side", "32", "--batch-size", "2", "--steps", "2", "--device", "cpu", "--no-progress",
             "--log-every", "1"]
    assert main(["pretrain", "--task", "pace", "--out", str(tmp_path / "pre"), *small]) == 0
    assert main(["finetune", "--init", "random", "--no-evaluate", "--out", str(tmp_path / "ft"), *small]) == 0
    assert (tmp_path / "pre" / "checkpoints" / "last.pt").is_file() and (tmp_path / "ft" / "classifier.pt").is_file()
