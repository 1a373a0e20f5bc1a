"""`vsslkit embed | neighbours` and the embedding explorer, on generated and on real videos."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import moving_square_frames

from vsslkit.cli import main
from vsslkit.data.store import FrameStore
from vsslkit.data.writer import write_video
from vsslkit.eval import embed as E
from vsslkit.eval.features import extract_video_features
from vsslkit.eval.results import file_sha256
from vsslkit.eval.retrieval import cosine_topk, standardise_with_gallery
from vsslkit.viz import neighbours as V

# Small and fast: a 0.9 M-parameter backbone on 4-frame 32-px clips, 2 clips per video.
SETTINGS = E.EmbedSettings(backbone="tiny_r3d", width=1.0, clip_len=4, crop_size=32, clips_per_video=2, short_side=48)
FLAGS = ["--backbone", "tiny_r3d", "--clip-len", "4", "--crop-size", "32", "--clips", "2", "--short-side", "48",
         "--device", "cpu", "--no-progress"]


def _video(path: Path, *, seed: int, frames: int = 40, reverse: bool = False) -> Path:
    data = moving_square_frames(frames, seed=seed)
    return write_video(path, data[::-1] if reverse else data, fps=25)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Two class folders of moving squares, a broken file and a video shorter than one clip."""
    root = tmp_path_factory.mktemp("my_videos")
    for i in range(3):
        _video(root / "right" / f"r{i}.mp4", seed=i)
        _video(root / "left" / f"l{i}.mp4", seed=10 + i, reverse=True)
    (root / "right" / "broken.mp4").write_bytes(b"this is not a video" * 10)
    _video(root / "left" / "short.mp4", seed=20, frames=3)
    (root / "notes.txt").write_text("not a video: ignored when a folder is searched")
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> FrameStore:
    return FrameStore(tmp_path_factory.mktemp("store"), short_side=SETTINGS.short_side)


def _embed(paths, store, *, seed=0, settings=SETTINGS, checkpoint="random"):
    net, _ = E.build_embedding_backbone(settings, checkpoint, seed=seed)
    proto = settings.protocol(checkpoint=checkpoint, seed=seed, dataset="test")
    return E.embed_videos(paths, net, store, settings, protocol=proto, progress=False), net


def test_collect_videos_searches_folders_and_refuses_missing_paths(folder):
    paths = E.collect_videos([folder, folder / "left" / "l0.mp4"])  # a file inside a folder counts once
    assert [p.relative_to(folder).as_posix() for p in paths] == [
        "left/l0.mp4", "left/l1.mp4", "left/l2.mp4", "left/short.mp4",
        "right/broken.mp4", "right/r0.mp4", "right/r1.mp4", "right/r2.mp4"]
    with pytest.raises(E.EmbedError, match="no such file or folder"):
        E.collect_videos([folder / "nope"])
    (folder.parent / "empty_dir").mkdir(exist_ok=True)
    with pytest.raises(E.EmbedError, match="no video files"):
        E.collect_videos([folder.parent / "empty_dir"])


def test_features_equal_extract_video_features_and_bad_videos_are_reported(folder, store):
    paths = E.collect_videos([folder])
    emb, net = _embed(paths, store)
    skipped = dict(emb.skipped)
    assert set(skipped) == {str(folder / "right" / "broken.mp4"), str(folder / "left" / "short.mp4")}
    assert "shorter than one clip" in skipped[str(folder / "left" / "short.mp4")]
    assert len(emb) == 6 and emb.strides == [1] * 6 and emb.num_frames == [40] * 6
    reference = extract_video_features(net, emb.paths, store, num_frames=emb.num_frames, clip_len=4, stride=1,
                                       clips_per_video=2, crop_size=32, layer="pool5")
    np.testing.assert_allclose(emb.features, reference, rtol=1e-5, atol=1e-6)
    assert emb.features.shape == (6, net.feature_dim) and emb.protocol["checkpoint"] == "random"


def test_same_seed_same_features_and_another_seed_other_features(folder, store):
    paths = [folder / "right" / "r0.mp4", folder / "left" / "l0.mp4"]
    a, _ = _embed(paths, store, seed=3)
    b, _ = _embed(paths, store, seed=3)
    c, _ = _embed(paths, store, seed=4)
    np.testing.assert_array_equal(a.features, b.features)
    assert not np.allclose(a.features, c.features)


def test_save_load_roundtrip_and_atomic_write(tmp_path, folder, store, monkeypatch):
    emb, _ = _embed(E.collect_videos([folder]), store)
    out = E.save_embedding(tmp_path / "f.npz", emb)
    back = E.load_embedding(out)
    np.testing.assert_array_equal(back.features, emb.features)
    assert back.paths == emb.paths and back.skipped == emb.skipped and back.protocol == emb.protocol
    assert back.strides == emb.strides and back.num_frames == emb.num_frames
    assert E.store_for(back, tmp_path / "frames").short_side == SETTINGS.short_side  # strips read where embedded
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask  # the user's umask, not mkstemp's private 0600

    def full_disk(fh, **arrays):
        fh.write(b"PK partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(OSError):
        E.save_embedding(out, emb)
    assert E.load_embedding(out).paths == emb.paths  # the previous file survives
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".f.npz")] == []  # no temp file left behind
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(E.EmbedError, match="bad.npz: not a readable embedding file"):
        E.load_embedding(tmp_path / "bad.npz")


def test_neighbours_match_the_retrieval_protocol_and_exclude_self(folder, store):
    emb, _ = _embed(E.collect_videos([folder]), store)
    res = E.neighbours_of(emb, emb.paths, k=3)
    for i, r in enumerate(res):
        assert r.query_row == i and int(r.rows[0]) == i and r.similarities[0] == pytest.approx(1.0)
    # leave-one-out: exactly what the retrieval protocol's cosine_topk(exclude_self=True) returns
    q, g = standardise_with_gallery(emb.features, emb.features)
    ref_rows, ref_sims = cosine_topk(q, g, 3, exclude_self=True)
    loo = E.neighbours_of(emb, emb.paths, k=3, exclude_self=True)
    np.testing.assert_array_equal(np.stack([r.rows for r in loo]), ref_rows)
    np.testing.assert_allclose(np.stack([r.similarities for r in loo]), ref_sims)
    assert all(r.query_row not in r.rows.tolist() for r in loo)
    assert len(E.neighbours_of(emb, emb.paths[:1], k=50, exclude_self=True)[0].rows) == len(emb) - 1


def test_a_new_video_is_embedded_like_the_stored_ones(folder, store, tmp_path):
    emb, _ = _embed(E.collect_videos([folder]), store)
    stored = E.load_embedding(E.save_embedding(tmp_path / "f.npz", emb))
    net = E.backbone_from_protocol(stored.protocol)
    target = emb.paths[4]
    again = E.embed_videos([target], net, store, E.EmbedSettings.from_protocol(stored.protocol),
                           protocol=stored.protocol, progress=False)
    np.testing.assert_allclose(again.features[0], emb.features[4], rtol=1e-5, atol=1e-6)
    gallery = E.Embedding(emb.features[:4], emb.paths[:4], emb.num_frames[:4], emb.strides[:4], emb.protocol)
    res = E.neighbours_of(gallery, [target], k=2, new_features=again.features)[0]
    assert res.query_row is None and len(res.rows) == 2
    with pytest.raises(E.EmbedError, match="1 queries are not in the features file"):
        E.neighbours_of(gallery, [target], k=2)


def test_checkpoints_pretext_and_classifier_and_a_changed_checkpoint_is_refused(folder, store, tmp_path):
    from vsslkit.train.pretrain import PretrainConfig, build_pretext_model
    from vsslkit.train.supervised import ClassifierConfig, VideoClassifier

    cfg = PretrainConfig(task="pace", backbone="tiny_r3d", width=1.0, clip_len=4, size=32, residual=True)
    torch.manual_seed(1)
    model = build_pretext_model(cfg)
    pre = tmp_path / "pretrain.pt"
    torch.save({"model": model.state_dict(), "config": {"pretrain": cfg.to_json()}}, pre)
    paths = [folder / "right" / "r0.mp4", folder / "left" / "l1.mp4"]
    settings = E.EmbedSettings(backbone="tiny_r3d", width=1.0, clip_len=4, crop_size=32, residual=True,
                               clips_per_video=2, short_side=48)
    emb, _ = _embed(paths, store, settings=settings, checkpoint=pre)
    assert emb.checkpoint_sha256 == file_sha256(pre) and emb.protocol["checkpoint"] == str(pre.resolve())
    reference = extract_video_features(model.backbone, emb.paths, store, num_frames=emb.num_frames, clip_len=4,
                                       clips_per_video=2, crop_size=32, residual=True)
    np.testing.assert_allclose(emb.features, reference, rtol=1e-5, atol=1e-6)

    ccfg = ClassifierConfig(backbone="tiny_r3d", width=1.0, num_classes=2, clip_len=4, stride=1, size=32,
                            residual=True, freeze_backbone=False, dropout=0.0)
    cls = tmp_path / "classifier.pt"
    torch.save({"model": VideoClassifier(model.backbone, 2).state_dict(), "config": asdict(ccfg)}, cls)
    from_classifier, _ = _embed(paths, store, settings=settings, checkpoint=cls)
    np.testing.assert_allclose(from_classifier.features, emb.features, rtol=1e-5, atol=1e-6)

    torch.save({"model": {}, "config": {}}, pre)  # the checkpoint changes after embedding
    with pytest.raises(E.EmbedError, match="changed since the features were written"):
        E.backbone_from_protocol(emb.protocol)
    pre.unlink()
    with pytest.raises(E.EmbedError, match="is gone"):
        E.backbone_from_protocol(emb.protocol)


def test_cli_embed_then_neighbours_table_html_and_new_query(folder, store, tmp_path, capsys):
    out = tmp_path / "features.npz"
    assert main(["embed", "--checkpoint", "random", str(folder), "--out", str(out), "--store", str(store.root),
                 *FLAGS]) == 0
    text = capsys.readouterr().out
    assert f"skipped {folder / 'right' / 'broken.mp4'}: " in text and "embedded 6 of 8 videos" in text
    emb = E.load_embedding(out)
    assert emb.protocol["command"].startswith("vsslkit ") and emb.protocol["extra"]["short_side"] == 48
    assert {p for p, _ in emb.skipped} == {str(folder / "right" / "broken.mp4"), str(folder / "left" / "short.mp4")}

    query = str(folder / "left" / "l1.mp4")
    html = tmp_path / "page.html"
    assert main(["neighbours", "--features", str(out), query, "--k", "3", "--html", str(html),
                 "--store", str(store.root), "--strip-frames", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "query left/l1.mp4 (in the features file)"
    assert lines[2].split() == ["1", "1.000", "left/l1.mp4", "(itself)"] and len(lines) == 2 + 3 + 1
    page = html.read_text()
    assert page.count("data:image/jpeg;base64,") == 4 and "left/l1.mp4" in page

    assert main(["neighbours", "--features", str(out), query, "--k", "3", "--exclude-self",
                 "--store", str(store.root)]) == 0
    table = capsys.readouterr().out
    assert "(itself)" not in table and table.count("\n") == 5

    new = _video(tmp_path / "new.mp4", seed=0)  # the same frames as right/r0.mp4, another file
    assert main(["neighbours", "--features", str(out), str(new), "--k", "2", "--store", str(store.root),
                 "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "(new video, embedded with the stored protocol)" in lines[0]
    assert lines[2].split()[1:] == ["1.000", "right/r0.mp4"]


@pytest.mark.parametrize("argv, expected", [
    (["embed", "--checkpoint", "random", "{tmp}/nope", "--out", "{tmp}/f.npz"], "{tmp}/nope: no such file or folder"),
    (["embed", "--checkpoint", "{tmp}/missing.pt", "{folder}", "--out", "{tmp}/f.npz"], "missing.pt: checkpoint not found"),
    (["embed", "--checkpoint", "{tmp}/junk.pt", "{folder}", "--out", "{tmp}/f.npz"], "junk.pt: not a loadable checkpoint"),
    (["embed", "--checkpoint", "random", "{folder}", "--out", "{tmp}/f.npz", "--layer", "pool9"], "unknown layer 'pool9'"),
    (["embed", "--checkpoint", "random", "{folder}", "--out", "{tmp}/f.npz", "--batch-size", "0"], "must be >= 1"),
    (["embed", "--checkpoint", "random", "{folder}/right/broken.mp4", "--out", "{tmp}/f.npz"],
     "none of the 1 videos could be embedded"),
    (["neighbours", "--features", "{tmp}/junk.pt", "x.mp4"], "junk.pt: not a readable embedding file"),
    (["neighbours", "--features", "{tmp}/absent.npz", "x.mp4"], "absent.npz: features file not found"),
    (["neighbours", "--features", "{tmp}/good.npz", "{tmp}/nope.mp4"], "nope.mp4: not in"),
    (["neighbours", "--features", "{tmp}/good.npz", "{folder}/left/l0.mp4", "--k", "0"], "--k must be >= 1"),
])
def test_cli_bad_input_is_one_line_and_exit_2(argv, expected, folder, store, tmp_path, capsys):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    emb, _ = _embed([folder / "left" / "l0.mp4", folder / "right" / "r0.mp4"], store)
    E.save_embedding(tmp_path / "good.npz", emb)
    argv = [a.format(tmp=tmp_path, folder=folder) for a in argv]
    extra = ["--store", str(store.root)] + (FLAGS if argv[0] == "embed" else [])
    assert main(argv + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    err = [line for line in err if not line.startswith("from the checkpoint")]
    assert len(err) == 1 and err[0].startswith(f"vsslkit {argv[0]}: ") and expected.format(tmp=tmp_path) in err[0]
    assert not (tmp_path / "f.npz").exists()


# --------------------------------------------------------------------------- the widget and the page


class ArrayFrames:
    """Video v has `n` frames; every pixel of frame t of video v is (10 v, t, 0)."""

    def __init__(self, n=30, size=16):
        self.n, self.size, self.reads = n, size, []

    def num_frames(self, path):
        return self.n

    def read(self, path, indices):
        if "gone" in str(path):
            raise FileNotFoundError(f"{path}: file not found")
        self.reads.append((str(path), np.asarray(indices).tolist()))
        frames = np.zeros((len(indices), self.size, self.size, 3), np.uint8)
        frames[..., 0] = 10 * int(Path(path).stem[-1])
        frames[..., 1] = np.asarray(indices)[:, None, None]
        return frames


def toy_embedding() -> E.Embedding:
    """Two folders; features make v0~v1 (folder a), v2~v3 (folder b), v4 in b but close to a."""
    paths = ["/data/a/v0.mp4", "/data/a/v1.mp4", "/data/b/v2.mp4", "/data/b/v3.mp4", "/data/b/gone4.mp4"]
    feats = np.array([[5, 0, 0], [4.8, 0.3, 0], [0, 5, 0.1], [0.2, 4.9, 0], [4.9, -0.2, 0.1]], np.float32)
    proto = asdict(SETTINGS.protocol(checkpoint="random", seed=0, dataset="toy"))
    return E.Embedding(feats, paths, [30] * 5, [1] * 5, proto)


def test_strip_rows_captions_colours_and_a_missing_video():
    emb = toy_embedding()
    frames = ArrayFrames()
    res = E.neighbours_of(emb, [emb.paths[0]], k=2, exclude_self=True)[0]
    rows = V.strip_rows(emb, res, frames, count=4, height=16)
    assert [r.caption.split(" ·")[0] for r in rows] == ["query: a/v0.mp4", "1. a/v1.mp4", "2. b/gone4.mp4"]
    assert rows[0].same_folder is None and rows[1].same_folder is True and rows[2].same_folder is False
    assert frames.reads[0] == ("/data/a/v0.mp4", [0, 10, 19, 29])
    assert rows[1].strip.shape == (16 + 6, 4 * 16 + 3 * 2 + 6, 3)  # 4 frames of 16 px, framed by 3 px
    assert tuple(rows[1].strip[0, 0]) == V.OK_COLOUR
    assert rows[2].strip is None and "file not found" in rows[2].problem
    assert V.neighbours_summary(rows) == "1 of 2 neighbours from the query's folder"


def test_embedding_explorer_callbacks():
    emb = toy_embedding()
    frames = ArrayFrames()
    box = V.embedding_explorer(emb, frames, k=1, count=4)
    dropdown, checkbox = box.children[0].children
    assert [label for label, _ in dropdown.options] == ["a/v0.mp4", "a/v1.mp4", "b/v2.mp4", "b/v3.mp4", "b/gone4.mp4"]
    assert "1 of 1 neighbours" in box.children[1].value  # v0 -> v1, same folder
    dropdown.value = 2
    panel = box.children[2].children
    assert "query: b/v2.mp4" in panel[0].value and "1. b/v3.mp4" in panel[2].value
    assert bytes(panel[1].value[:2]) == b"\xff\xd8" and frames.reads[-1][0] == "/data/b/v3.mp4"
    checkbox.value = False  # keep the video itself: it comes first
    assert "1. b/v2.mp4" in box.children[2].children[2].value and "itself" in box.children[2].children[2].value
    rows = box.pick(0)
    assert rows[1].caption.startswith("1. a/v0.mp4") and rows[1].same_folder
    rows = box.pick(4)
    assert rows[0].strip is None and "file not found" in rows[0].problem  # a gone video is a note, not a crash


def test_neighbours_html_is_self_contained(tmp_path):
    emb = toy_embedding()
    results = E.neighbours_of(emb, emb.paths[:2], k=2, exclude_self=True)
    page = V.neighbours_html(emb, results, ArrayFrames(), count=3)
    gone = sum(int(row) == 4 for r in results for row in r.rows)  # gone4 has no frames: a note instead
    assert gone >= 1 and page.count("frames unavailable") == gone
    assert page.count("<h2>") == 2 and page.count("data:image/jpeg;base64,") == 2 * 3 - gone
    assert "src=\"http" not in page
    path = V.write_html(tmp_path / "p.html", page)
    assert path.read_text() == page


# --------------------------------------------------------------------------- real videos


def test_real_videos_labelled_folder_with_a_broken_file(real_videos, tmp_path_factory):
    work = tmp_path_factory.mktemp("real")
    broken = work / "broken.avi"
    broken.write_bytes((real_videos / "robustness" / "opencv__Megamind_bugy.avi").read_bytes()[:4000])
    store = FrameStore(work / "store", short_side=48)
    settings = E.EmbedSettings(backbone="tiny_r3d", width=1.0, clip_len=8, crop_size=32, clips_per_video=1,
                               short_side=48)
    paths = E.collect_videos([real_videos / "labeled", broken, real_videos / "robustness" / "decord__unordered.mov"])
    emb, net = _embed(paths, store, settings=settings)
    skipped = dict(emb.skipped)
    assert str(broken) in skipped and "shorter than one clip" in skipped[str(real_videos / "robustness" /
                                                                            "decord__unordered.mov")]
    labelled = [p for p in emb.paths if "/labeled/" in p]
    assert len(labelled) == 23 and len(emb) + len(emb.skipped) == len(paths)
    reference = extract_video_features(net, emb.paths, store, num_frames=emb.num_frames, clip_len=8,
                                       stride=emb.strides, clips_per_video=1, crop_size=32)
    np.testing.assert_allclose(emb.features, reference, rtol=1e-5, atol=1e-6)
    first = [int(r.rows[0]) for r in E.neighbours_of(emb, emb.paths, k=1)]
    assert first == list(range(len(emb)))
    manifest = json.dumps(emb.protocol)
    assert '"checkpoint": "random"' in manifest


def test_folder_agreement_counts_leave_one_out_nearest_in_the_same_folder():
    emb = toy_embedding()  # v0 -> v1 (a ✓), v1 -> v0 (a ✓), v2 -> v3 (b ✓), v3 -> v2 (b ✓), gone4 -> a (✗)
    res = E.folder_agreement(emb)
    assert res == {"videos": 5, "folders": 2, "eligible": 5, "hits": 4, "rate_all": 0.8, "rate_eligible": 0.8,
                   "chance_eligible": pytest.approx((2 * 1 / 4 + 3 * 2 / 4) / 5)}
    lonely = E.Embedding(np.eye(3, dtype=np.float32), ["/x/a/1.mp4", "/x/a/2.mp4", "/x/b/3.mp4"], [9] * 3, [1] * 3, {})
    res = E.folder_agreement(lonely)  # all pairs tie: ties go to the lower row, so 1 -> 2, 2 -> 1, 3 -> 1
    assert (res["eligible"], res["hits"], res["rate_eligible"], res["chance_eligible"]) == (2, 2, 1.0, 0.5)
    assert res["rate_all"] == pytest.approx(2 / 3)  # the only video of folder b can never score
