"""Seed 002's retrieval feature ("max122": a (1, 2, 2) 3D max pool of the last conv map, flattened)
beside global average/max pooling: by hand, through feature extraction, and in the commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_embed import FLAGS, SETTINGS, folder, store  # noqa: F401  (module fixtures: moving-square videos)
from test_features import ArraySource, Identity

from vsslkit.cli import main
from vsslkit.eval import embed as E
from vsslkit.eval.features import extract_video_features, pool_features
from vsslkit.eval.pooling import POOLINGS

torch.set_num_threads(1)


def test_max122_by_hand():
    fmap = torch.arange(2 * 2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 2, 4, 4)
    fmap[0, 0, 0, 0, 0] = 100.0  # the max of the top-left window of channel 0, time 0
    out = pool_features(fmap, "max122")
    expected = torch.stack([fmap[0, c, t, 2 * i:2 * i + 2, 2 * j:2 * j + 2].max()
                            for c in range(2) for t in range(2) for i in range(2) for j in range(2)])
    assert out.shape == (1, 2 * 2 * 2 * 2)
    torch.testing.assert_close(out[0], expected)
    assert out[0, 0] == 100.0
    assert pool_features(fmap, "avg").shape == pool_features(fmap, "max").shape == (1, 2)


def test_max122_odd_sizes_drop_the_last_row_and_tiny_maps_are_refused():
    assert pool_features(torch.zeros(3, 4, 1, 5, 3), "max122").shape == (3, 4 * 1 * 2 * 1)
    with pytest.raises(ValueError, match="at least 2x2"):
        pool_features(torch.zeros(1, 4, 1, 1, 1), "max122")
    with pytest.raises(ValueError, match="max122"):
        pool_features(torch.zeros(1, 4, 1, 2, 2), "mean")
    assert POOLINGS == ("avg", "max", "max122")


def test_max122_through_extract_video_features():
    src = ArraySource([12], [10])
    kw = {"num_frames": [12], "clip_len": 3, "stride": 1, "clips_per_video": 2, "crop_size": 8}
    feats = extract_video_features(Identity(), ["v0.mp4"], src, pooling="max122", **kw)
    assert feats.shape == (1, 3 * 3 * 4 * 4)  # channels x frames x (8/2) x (8/2)
    # flat grey frames: every window's max is the frame itself; averaged over the 2 clips (starts 0 and 9)
    avg = extract_video_features(Identity(), ["v0.mp4"], src, pooling="avg", **kw)
    per_frame = feats.reshape(3, 3, 16)
    np.testing.assert_allclose(per_frame.mean(axis=(1, 2)), avg[0], rtol=1e-5)


def test_max122_of_the_classroom_backbone_is_512_dims():
    from vsslkit.models import build_backbone

    net = build_backbone("r3d_10", width=0.25).eval()
    with torch.no_grad():
        fmap = net.features(torch.zeros(2, 3, 8, 56, 56), layers=("pool5",))["pool5"]
    assert tuple(fmap.shape[1:]) == (128, 1, 4, 4)  # SPECS §1.1: 128 x 1 x 2 x 2 after the pool
    assert pool_features(fmap, "max122").shape == (2, 512)


def test_embed_with_max122_records_it(folder, store):  # noqa: F811
    from dataclasses import replace

    settings = replace(SETTINGS, pooling="max122")
    net, _ = E.build_embedding_backbone(settings, "random", seed=0)
    emb = E.embed_videos([folder / "left" / "l0.mp4", folder / "right" / "r0.mp4"], net, store, settings,
                         protocol=settings.protocol(checkpoint="random", seed=0, dataset="test"), progress=False)
    avg = replace(SETTINGS, pooling="avg")
    net, _ = E.build_embedding_backbone(avg, "random", seed=0)
    flat = E.embed_videos([folder / "left" / "l0.mp4"], net, store, avg,
                          protocol=avg.protocol(checkpoint="random", seed=0, dataset="test"), progress=False)
    with torch.no_grad():  # the dimension the map at this input size gives
        fmap = net.features(torch.zeros(1, 3, SETTINGS.clip_len, SETTINGS.crop_size, SETTINGS.crop_size))["pool5"]
    assert emb.protocol["pooling"] == "max122"
    assert emb.features.shape == (2, pool_features(fmap, "max122").shape[1])
    assert not np.allclose(emb.features[0], flat.features[0])  # a max, not the average
    with pytest.raises(E.EmbedError, match="max122"):
        replace(SETTINGS, pooling="median")


def test_cli_embed_and_retrieve_take_max122(folder, store, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "f.npz"
    assert main(["embed", "--checkpoint", "random", str(folder), "--out", str(out), "--store", str(store.root),
                 "--pooling", "max122", *FLAGS]) == 0
    assert E.load_embedding(out).protocol["pooling"] == "max122"
    result = tmp_path / "r.json"
    assert main(["retrieve", "--data", str(folder), "--checkpoint", "random", "--backbone", "tiny_r3d",
                 "--clip-len", "4", "--stride", "1", "--crop-size", "32", "--store", str(store.root),
                 "--short-side", "48", "--pooling", "max122", "--out", str(result)]) == 0
    assert "pool5/max122" in capsys.readouterr().out
    assert json.loads(result.read_text())["protocol"]["pooling"] == "max122"
