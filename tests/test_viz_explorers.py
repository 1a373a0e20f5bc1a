"""Explorer callbacks are plain functions: call every one of them without a browser (with the held-out
pretext clips of `vsslkit.eval.pretext` that the localization explorers browse)."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from vsslkit.eval import pretext
from vsslkit.eval.retrieval import recall_at_k
from vsslkit.tasks import Joint, make_task
from vsslkit.train.pretrain import MoCoConfig, PretrainConfig, build_pretext_model
from vsslkit.viz import explorers


class ArrayFrames:
    """Every video has n frames; frame t of video v has pixel value (v, t) in its top-left corner."""

    def __init__(self, n=120, size=40):
        self.n, self.size, self.reads = n, size, []

    def num_frames(self, path):
        return self.n

    def read(self, path, indices):
        indices = np.asarray(indices)
        self.reads.append((str(path), indices.tolist()))
        frames = np.zeros((len(indices), self.size, self.size, 3), np.uint8)
        frames[:, 0, 0, 0] = int(str(path).rsplit("_", 1)[-1].split(".")[0])
        frames[:, 0, 0, 1] = indices % 256
        return frames


@dataclass
class Index:  # the VideoIndex fields the explorers read
    paths: list
    labels: list
    class_names: list
    num_frames: list | None


PREDICTIONS = [
    {"path": "v_0.mp4", "label": 0, "pred": 0, "score": 0.9},
    {"path": "v_1.mp4", "label": 0, "pred": 2, "score": 0.4},
    {"path": "v_2.mp4", "label": 0, "pred": 1, "score": 0.7},
    {"path": "v_3.mp4", "label": 1, "pred": 1, "score": 0.8},
    {"path": "v_4.mp4", "label": 2, "pred": 0, "score": 0.5},
]
NAMES = ["MoveRight", "MoveLeft", "Bounce"]


def classifier_result():
    counts = np.zeros((3, 3))
    for p in PREDICTIONS:
        counts[p["label"], p["pred"]] += 1
    return {"confusion": (counts / counts.sum(1, keepdims=True)).tolist(), "class_names": NAMES,
            "predictions": PREDICTIONS}


def test_misclassified_lists_only_wrong_videos_of_the_class_most_confident_first():
    assert [p["path"] for p in explorers.misclassified(PREDICTIONS, 0)] == ["v_2.mp4", "v_1.mp4"]
    assert explorers.misclassified(PREDICTIONS, 1) == []
    assert explorers.mistake_options(PREDICTIONS, 2, NAMES) == [("v_4.mp4 → predicted MoveRight (p = 0.50)", "v_4.mp4")]
    assert explorers.class_options(classifier_result()) == [
        ("MoveRight: 2 of 3 wrong", 0), ("MoveLeft: 0 of 1 wrong", 1), ("Bounce: 1 of 1 wrong", 2)]


def test_video_strip_spreads_frames_over_the_whole_video():
    frames = ArrayFrames(n=31)
    strip = explorers.video_strip(frames, "v_3.mp4", count=4, columns=4)
    assert frames.reads[-1] == ("v_3.mp4", [0, 10, 20, 30])
    assert strip.shape == (40, 4 * 40 + 3 * 2, 3)
    short = explorers.video_strip(ArrayFrames(n=3), "v_3.mp4", count=16)
    assert short.shape[1] == 3 * 40 + 2 * 2  # never more frames than the video has


def test_confusion_explorer_callbacks_list_mistakes_and_show_the_video():
    frames = ArrayFrames()
    shown = []
    box = explorers.confusion_explorer(classifier_result(), frames, display=shown.append, count=8)
    assert shown[0].data[0].type == "heatmap"
    dropdown, select, note, strip = box.children[1:]
    assert [v for _, v in select.options] == ["v_2.mp4", "v_1.mp4"]  # class 0 picked first
    assert strip.value[:2] == b"\xff\xd8" and frames.reads[-1][0] == "v_2.mp4"
    select.value = "v_1.mp4"
    assert frames.reads[-1][0] == "v_1.mp4"
    dropdown.value = 1  # no mistakes in that class
    assert select.options == () and "correctly" in note.value and strip.value == b""
    dropdown.value = 2
    assert frames.reads[-1] == ("v_4.mp4", np.linspace(0, 119, 8).round().astype(int).tolist())


def retrieval_fixture():
    rng = np.random.default_rng(0)
    gallery_labels = np.array([0, 0, 1, 1, 2, 2])
    query_labels = np.array([0, 1, 2])
    centres = rng.normal(size=(3, 8)) * 5
    gallery_feats = centres[gallery_labels] + rng.normal(size=(6, 8)) * 0.1
    query_feats = centres[query_labels] + rng.normal(size=(3, 8)) * 0.1
    result = recall_at_k(query_feats, query_labels, gallery_feats, gallery_labels, ks=(1, 2, 5))
    queries = Index([f"q_{i}.mp4" for i in range(3)], query_labels.tolist(), NAMES, [40, 60, 80])
    gallery = Index([f"g_{i}.mp4" for i in range(6)], gallery_labels.tolist(), NAMES, None)
    return result, queries, gallery


def test_neighbour_gallery_middle_frames_captions_and_hits():
    result, queries, gallery = retrieval_fixture()
    frames = ArrayFrames(n=120)
    g = explorers.neighbour_gallery(1, result.neighbours, result.similarities, queries=queries, gallery=gallery,
                                    frames=frames, k=3)
    assert frames.reads[0] == ("q_1.mp4", [30])  # middle of the query's 60 frames
    assert frames.reads[1] == ("g_2.mp4", [60]) or frames.reads[1] == ("g_3.mp4", [60])  # gallery: store's count
    assert g.hits == [True, True, False]
    assert g.captions[0].startswith("query: MoveLeft") and g.captions[1].startswith("1. MoveLeft · similarity")
    assert g.captions[1].endswith("✓") and not g.captions[3].endswith("✓")
    tile = 40 + 2 * 3
    assert g.image.shape == (tile, 4 * tile + 3 * 6, 3)
    assert tuple(g.image[0, tile + 6]) == explorers.OK_COLOUR  # first neighbour framed green
    assert tuple(g.image[0, 3 * (tile + 6)]) == explorers.WRONG_COLOUR
    with pytest.raises(IndexError):
        explorers.neighbour_gallery(3, result.neighbours, result.similarities, queries=queries, gallery=gallery,
                                    frames=frames)


def test_retrieval_explorer_callbacks_and_recall_tables():
    result, queries, gallery = retrieval_fixture()
    results = {"random": result, "pretrained": result}
    assert explorers.recall_curves(results)["random"] == {1: 100.0, 2: 100.0, 5: 100.0}
    assert explorers.recall_markdown(results).splitlines()[2] == "| random | 100.0 | 100.0 | 100.0 |"
    assert explorers.query_options(queries)[2] == ("Bounce · q_2.mp4", 2)
    frames = ArrayFrames()
    box = explorers.retrieval_explorer(results, queries=queries, gallery=gallery, frames=frames, k=2)
    dropdown = box.children[0]  # no second R@k figure above it: the notebook draws that once
    dropdown.value = 2
    assert "2 of 2 neighbours share" in box.children[1].value and box.children[2].value[:2] == b"\xff\xd8"
    assert set(box.pick(0)) == {"random", "pretrained"}
    chance = {1: 0.25, 2: 0.5, 5: 1.0}
    assert explorers.recall_markdown(results, chance=chance).splitlines()[-1] == \
        "| *chance (random ranking)* | *25.0* | *50.0* | *100.0* |"


def test_retrieval_reading_states_the_moves_of_this_run():
    from vsslkit.eval.retrieval import RetrievalResult

    def result(r1, r5):
        return RetrievalResult(recall={1: r1, 5: r5}, neighbours=np.zeros((1, 5), int), similarities=np.zeros((1, 5)),
                               hits=np.zeros((1, 2), bool), ks=(1, 5))

    text = explorers.retrieval_reading({"random": result(0.2, 0.38), "pretrained": result(0.25, 0.55)},
                                       baseline="random", chance={1: 0.07, 5: 0.3}, noise=2.4)
    assert "R@1 20.0 → 25.0 % (+5.0 points; chance 7.0 %)" in text and "R@5 38.0 → 55.0 % (+17.0 points" in text
    assert "the largest move is +17.0 points" in text
    flat = explorers.retrieval_reading({"random": result(0.2, 0.4), "pretrained": result(0.21, 0.4)},
                                       baseline="random", chance={1: 0.07, 5: 0.3}, noise=2.4)
    assert "no move beyond one query (2.4 points)" in flat


def test_chance_recall_is_the_hypergeometric_miss_probability():
    from vsslkit.eval.retrieval import chance_recall, informative_ks

    gallery = np.repeat(np.arange(14), 5)  # 70 training videos, 5 per class
    queries = np.arange(14)
    assert chance_recall(queries, gallery, 1) == pytest.approx(5 / 70)
    assert chance_recall(queries, gallery, 66) == 1.0  # 66 draws cannot all miss 5 of 70
    assert 0.8 < chance_recall(queries, gallery, 20) < 0.85
    assert informative_ks(queries, gallery, (1, 5, 10, 20, 50)) == (1, 5, 10, 20)


def test_pretext_reading_is_written_from_the_summary():
    class Summary:
        def __init__(self, accuracy, counts):
            self.accuracy, self.chance, self.majority = accuracy, 0.25, 0.27
            self.names, self.counts = ["p=1", "p=2", "p=3", "p=4"], np.asarray(counts)

    good = Summary(0.46, [[5, 1, 0, 0], [2, 4, 0, 0], [0, 0, 3, 3], [0, 0, 1, 5]])
    text = explorers.pretext_reading({"pace": {"speed": good}, "flat": {"speed": Summary(0.26, np.eye(4))}})
    assert "**pace** (`speed`, 4 classes): 46.0 % of held-out clips right, against 25.0 % chance and 27.0 %" in text
    assert "**above chance**" in text and "Most confused: true p=3 answered as p=4 (50 % of its clips)" in text
    assert "**flat**" in text and "**near chance**" in text


def test_live_curves_collects_rows_and_redraws():
    shown = []
    curves = explorers.LiveCurves("pace", metrics=("loss", "speed_acc"), display=shown.append)
    curves({"step": 10, "loss": 1.4, "speed_acc": 0.25, "lr": 0.05})
    fig = curves({"step": 20, "loss": 1.2, "speed_acc": 0.5, "lr": 0.05})
    assert len(shown) == 2 and shown[-1] is fig
    assert [t.name for t in fig.data] == ["pace · loss", "pace · speed_acc"]
    assert fig.data[1].y == (0.25, 0.5)


def test_pretext_vs_chance_uses_the_last_logs_and_the_sampler_majority():
    task = make_task("speed-change-fine", clip_len=8, extra_frames=1)
    history = [{"step": s, "loss": 1.0, "speed_acc": a, "loc_acc": 0.5} for s, a in ((10, 0.0), (20, 0.2), (30, 0.4))]
    rows = explorers.pretext_vs_chance(history, task, last=2)
    assert [r["head"] for r in rows] == ["speed", "loc"]
    assert rows[0]["accuracy"] == pytest.approx(0.3) and rows[0]["chance"] == pytest.approx(1 / 9)
    assert rows[1]["majority"] == pytest.approx(1 / 5, abs=0.03)  # location-primary: loc labels uniform
    assert "| fine | loc | 5 | 50.0 % | 20.0 % |" in explorers.chance_markdown({"fine": rows})
    with pytest.raises(KeyError, match="loc_acc"):
        explorers.pretext_vs_chance([{"step": 1, "loss": 1.0, "speed_acc": 0.1}], task)
    # a pretraining run's Joint logs its branch's metrics as "pretext.<head>_acc"
    joint = Joint({"pretext": task})
    prefixed = [{f"pretext.{k}" if k.endswith("_acc") else k: v for k, v in r.items()} for r in history]
    assert explorers.pretext_vs_chance(prefixed, joint, last=2) == rows


def test_label_names_for_each_task():
    assert pretext.label_names(make_task("pace"), "speed") == ["p=1", "p=2", "p=3", "p=4"]
    fine = make_task("speed-change-fine", clip_len=8, extra_frames=1)
    assert pretext.label_names(fine, "loc") == ["m=2", "m=3", "m=4", "m=5", "constant"]
    assert pretext.label_names(fine, "speed")[:4] == ["(1,1)", "(1,2)", "(1,3)", "(2,1)"]
    assert pretext.label_names(make_task("speed-change-coarse"), "speed")[4] == "jump-up j=1"


@pytest.fixture(scope="module")
def pretext_clips():
    torch.manual_seed(0)
    cfg = PretrainConfig(task="speed-change-fine", moco=MoCoConfig(queue_size=32), clip_len=8, size=32,
                         residual=True, backbone="r3d_10", width=0.25)
    model = build_pretext_model(cfg)
    frames = ArrayFrames(n=60)
    paths = ["v_1.mp4", "v_2.mp4", "v_3.mp4"]
    clips = pretext.predict_pretext_clips(model, frames, paths, [60, 10, 60], crop_size=32, clips_per_video=3, seed=0)
    return model, frames, clips


def test_predict_pretext_clips_truth_matches_the_plans(pretext_clips):
    model, _, clips = pretext_clips
    task = model.task.primary
    assert len(clips) == 6 and {c.video for c in clips} == {0, 2}  # the 10-frame video is too short
    for clip in clips:
        assert len(clip.plan) == 9  # K + 1 frames for 8 residual differences
        params = task.params_of(clip.labels)
        if params["m"] is None:
            assert clip.plan.kind == "constant" and len(set(np.diff(clip.plan.indices))) == 1
        else:
            assert clip.plan.params["change_at"] == params["m"] + 1
            assert (clip.plan.params["r1"], clip.plan.params["r2"]) == (params["r1"], params["r2"])
        assert set(clip.predicted) == {"speed", "loc"} and all(0 < p <= 1 for p in clip.confidence.values())
    again = pretext.predict_pretext_clips(model, ArrayFrames(n=60), ["v_1.mp4", "v_2.mp4", "v_3.mp4"],
                                          [60, 10, 60], crop_size=32, clips_per_video=3, seed=0)
    assert [c.labels for c in again] == [c.labels for c in clips]  # the seed fixes the clips
    assert [c.predicted for c in again] == [c.predicted for c in clips]


def test_localization_summary_timeline_and_view(pretext_clips):
    model, frames, clips = pretext_clips
    task = model.task
    summary = pretext.localization_summary(clips, task)
    loc = summary["loc"]
    assert loc.counts.shape == (5, 5) and loc.counts.sum() == len(clips)
    assert loc.accuracy == pytest.approx(np.trace(loc.counts) / len(clips))
    assert "| loc | 5 |" in pretext.summary_markdown(summary)
    errors = pretext.change_error(clips, task)
    assert errors["changing_clips"] == sum(c.labels["loc"] != 4 for c in clips)
    clip = clips[0]
    fig = explorers.localization_timeline(clip, task)
    assert list(fig.data[0].x) == clip.plan.indices.tolist()
    shown = []
    box = explorers.localization_view(clips, task, frames, display=shown.append)
    box.children[0].value = 1
    assert len(shown) == 2 and box.children[3].value[:2] == b"\xff\xd8"
    assert frames.reads[-1][1] == clips[1].plan.indices.tolist()


def test_localization_timeline_marks_the_predicted_change():
    task = make_task("speed-change-fine", clip_len=8, extra_frames=1)
    plan = task.plan_for({"r1": 1, "r2": 3, "m": 3}, 60, np.random.default_rng(0), start=0)
    clip = pretext.PretextClip(0, "v_1.mp4", 60, plan, task.label_of({"r1": 1, "r2": 3, "m": 3}),
                               {"speed": 2, "loc": 2}, {"speed": 0.5, "loc": 0.4})
    fig = explorers.localization_timeline(clip, task)
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert sorted(s.y0 for s in lines) == [3.5, 4.5]  # true change at m=3, predicted at m=4 (+1 residual frame)
    assert "true (1,3), m=3" in explorers.describe_clip(clip, task)
    constant = pretext.PretextClip(0, "v_1.mp4", 60, plan, clip.labels, {"speed": 2, "loc": 4}, clip.confidence)
    assert any("constant" in a.text for a in explorers.localization_timeline(constant, task).layout.annotations)
