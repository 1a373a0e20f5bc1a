"""The tracking pictures of notebook 10: box geometry against hand-computed pixels, the cycle
trace against the library's own cycles, boxes on identity features that stay put or follow a
known shift, the figures' traces, the propagation widget's choices, and the printed readings."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
import torch.nn.functional as F

from vsslkit.data.synthetic import object_centres, params_record, sample_params
from vsslkit.models.cycle import affine_theta, cycles
from vsslkit.models.resnet50_inflated import InflatedResNet50
from vsslkit.tasks import Joint
from vsslkit.tasks.model import PretextModel
from vsslkit.tasks.timecycle import TimeCycleTask
from vsslkit.viz import tracking as vt

torch.set_num_threads(1)


def identity_tracker(patch_size: int = 4, scale: float = 0.25):
    """A tracking module whose features are its input (L2-normalised) and a backbone that returns
    the clip itself: what moves in the clip moves in the features."""
    module = SimpleNamespace(embed=lambda x: F.normalize(x, dim=1), layer="pool4", scale=scale,
                             patch_size=patch_size, temperature=0.01)
    backbone = SimpleNamespace(features=lambda x, layers: {layers[0]: x})
    return module, backbone


def texture(channels: int = 16, side: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, channels, 1, side, side, generator=torch.Generator().manual_seed(seed))


def theta_at(x_px: float, y_px: float, side: int, *, alpha: float = 0.0, scale: float = 0.25) -> torch.Tensor:
    return affine_theta(torch.tensor([(2 * x_px + 1) / side - 1]), torch.tensor([(2 * y_px + 1) / side - 1]),
                        torch.tensor([alpha]), scale)


def test_box_corners_and_centre_are_the_hand_computed_pixels():
    theta = affine_theta(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.0]), 0.25)[0]
    corners = vt.box_corners(theta, 64, 64)
    # normalised ±0.25 on a 64 px side: ((±0.25 + 1) * 64 - 1) / 2 = 23.5 and 39.5
    assert np.allclose(corners, [[23.5, 23.5], [39.5, 23.5], [39.5, 39.5], [23.5, 39.5], [23.5, 23.5]])
    assert np.allclose(vt.box_centre(theta, 64, 64), [31.5, 31.5])
    turned = affine_theta(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([math.pi / 2]), 0.25)[0]
    assert np.allclose(vt.box_corners(turned, 64, 64)[0], [39.5, 23.5])  # (-1, -1) turned a quarter: top right
    wide = vt.box_corners(np.array([[0.5, 0, 0], [0, 0.5, 0]]), 100, 50)
    assert np.allclose(wide[2], [74.5, 37.0])  # x on the 100 px side, y on the 50 px side


def test_a_cycle_on_still_identity_features_stays_put():
    module, backbone = identity_tracker()
    clip = torch.cat([texture()] * 4, 2)
    trace = vt.trace_cycle(module, backbone, clip, theta_at(7.5, 5.5, 16), method="affinity")
    assert trace.order == [3, 2, 1, 0, 1, 2, 3]
    for theta in trace.thetas:
        assert np.allclose(vt.box_centre(theta, 16, 16), [7.5, 5.5], atol=0.05)
    assert trace.heats[0] is None
    for heat in trace.heats[1:]:
        assert heat.shape == (16, 16) and math.isclose(float(heat.sum()), 1.0, rel_tol=1e-4)
    assert trace.end_grid_loss < 1e-4


def test_a_cycle_follows_a_known_shift_back_and_forth():
    """The scene moves one map cell right per frame: going back, the box moves one cell left per
    frame; going forward it comes back, and the cycle ends where it began."""
    module, backbone = identity_tracker()
    base = texture(seed=3)
    clip = torch.cat([torch.roll(base, shifts=t, dims=-1) for t in range(4)], 2)
    trace = vt.trace_cycle(module, backbone, clip, theta_at(9.5, 8.5, 16), method="affinity")
    xs = [vt.box_centre(theta, 16, 16)[0] for theta in trace.thetas]
    assert np.allclose(xs, [9.5, 8.5, 7.5, 6.5, 7.5, 8.5, 9.5], atol=0.05)
    assert trace.steps("back") == [1, 2, 3] and trace.steps("forward") == [4, 5, 6]
    assert trace.heats[1].argmax() % 16 in (7, 8, 9)  # the mass sits around the box's new column


def test_trace_cycle_is_the_library_cycle_step_by_step():
    """With the trained module's localiser the trace's backward boxes and its end are exactly the
    `models.cycle.cycles` of the training loss (the longest long cycle)."""
    task = TimeCycleTask(size=32, proj_dim=16)
    torch.manual_seed(0)
    model = PretextModel(InflatedResNet50(width=0.125), Joint({"track": task})).eval()
    module, backbone = model.head.branches["track"], model.backbone
    g = torch.Generator().manual_seed(1)
    clip = torch.randn(1, 3, 4, 32, 32, generator=g)
    torch.nn.init.normal_(module.localiser.net[-1].weight, std=0.05, generator=g)  # a localiser that moves
    theta_gt = theta_at(12.0, 20.0, 32, alpha=0.4, scale=module.scale)
    trace = vt.trace_cycle(module, backbone, clip, theta_gt)
    with torch.no_grad():
        phi = module.embed(backbone.features(clip, layers=(module.layer,))[module.layer])
        ref = cycles([phi[:, :, t] for t in range(4)], theta_gt, module.localiser, temperature=module.temperature,
                     patch_size=module.patch_size)
    for i in range(3):
        assert np.allclose(trace.thetas[1 + i], ref.back_thetas[i][0].numpy(), atol=1e-5)
    assert np.allclose(trace.thetas[-1], ref.long_thetas[-1][0].numpy(), atol=1e-5)
    assert not np.allclose(trace.thetas[-1], trace.thetas[0], atol=1e-3)
    with pytest.raises(ValueError, match="method"):
        vt.trace_cycle(module, backbone, clip, theta_gt, method="nearest")


def test_cycle_figure_draws_every_box_and_heat_map():
    module, backbone = identity_tracker()
    trace = vt.trace_cycle(module, backbone, torch.cat([texture()] * 4, 2), theta_at(7.5, 7.5, 16),
                           method="affinity")
    frames = np.zeros((4, 16, 16, 3), np.uint8)
    fig = vt.cycle_figure(frames, trace)
    kinds = [t.type for t in fig.data]
    assert kinds.count("image") == 4 + 3 + 3  # the frames, under the backward and the forward heat maps
    assert kinds.count("heatmap") == 6
    boxes = [t for t in fig.data if t.type == "scatter"]
    assert len(boxes) == 1 + 2 * 3 + 2 * 3  # ground truth; each step in row 1 and in its heat row
    assert all(len(b.x) == 5 and b.x[0] == b.x[-1] for b in boxes)  # closed outlines
    assert {b.name for b in boxes if b.showlegend} == {"ground-truth patch (θ_GT)", "backward step", "forward step"}
    assert fig.layout.coloraxis.colorbar.title.text == vt.HEAT_TITLE
    with pytest.raises(ValueError, match="4 frames"):
        vt.cycle_figure(frames[:3], trace)


def test_affinity_heatmap_aligns_cells_with_pixels():
    heat = np.zeros((4, 4))
    heat[1, 2] = 1.0
    fig = vt.affinity_heatmap(np.zeros((64, 64, 3), np.uint8), heat, theta=np.array([[0.25, 0, 0], [0, 0.25, 0]]))
    image, hm, box = fig.data
    assert image.type == "image" and hm.type == "heatmap" and box.type == "scatter"
    assert np.allclose(hm.x, [7.5, 23.5, 39.5, 55.5])  # cell j covers pixels 16 j … 16 j + 15
    assert fig.layout.xaxis.title.text == "x (pixels)" and fig.layout.yaxis.title.text == "y (pixels)"


class StillSource:
    """Every frame the same image; records the frame indices read."""

    def __init__(self, side: int = 16, frames: int = 60):
        self.image = np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)
        self.count, self.reads = frames, []

    def num_frames(self, path):
        return self.count

    def read(self, path, indices):
        self.reads.append(list(indices))
        return np.stack([self.image] * len(indices))


def still_tracker():
    """Identity features of a still scene: the backbone's map is the same texture in every frame.
    A 5-cell patch of 5/16 of the side puts its cells on map cells for whole-pixel starts (what the
    widget's sliders give), so sampling it blends no features."""
    module, _ = identity_tracker(patch_size=5, scale=5 / 16)
    base = texture(seed=5)
    backbone = SimpleNamespace(features=lambda x, layers: {layers[0]: base.expand(-1, -1, x.shape[2], -1, -1)})
    return module, backbone


def moving_video(name: str = "v_a", frames: int = 60, side: int = 16) -> vt.TrackVideo:
    centres = np.stack([4.0 + 0.1 * np.arange(frames), np.full(frames, 8.0)], 1)  # drifts right, stays inside
    return vt.TrackVideo(name, __import__("pathlib").Path(f"/x/{name}.mp4"), centres, 1.0, side)


def test_a_box_on_still_identity_features_stays_put_and_is_scored_against_the_truth():
    module, backbone = still_tracker()
    source, video = StillSource(), moving_video()
    frames, result = vt.propagate_window(module, backbone, source, video, start=10, steps=3, gap=4, xy=(6, 9))
    assert source.reads == [[10, 14, 18, 22]] and frames.shape == (4, 16, 16, 3)
    assert np.allclose(result.predicted, [[6, 9]] * 4, atol=0.05)
    assert np.allclose(result.truth, video.centres[[10, 14, 18, 22]])
    assert np.allclose(result.errors, result.constant, atol=0.05)  # standing still is what it did
    assert result.frames == [10, 14, 18, 22]
    with pytest.raises(ValueError, match="ends after"):
        vt.propagate_window(module, backbone, source, video, start=50, steps=3, gap=4, xy=(6, 9))


def test_propagation_errors_by_hand_and_its_figure():
    result = vt.propagation_errors(np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]]),
                                   np.array([[0.0, 0.0], [3.0, 0.0], [6.0, 8.0]]), [5, 9, 13])
    assert np.allclose(result.errors, [4.0, 0.0]) and np.allclose(result.constant, [3.0, 10.0])
    assert result.mean_error == 2.0 and result.mean_constant == 6.5
    fig = vt.propagation_figure(np.zeros((3, 16, 16, 3), np.uint8), result)
    markers = [t for t in fig.data if t.type == "scatter" and t.mode == "markers"]
    assert [t.name for t in markers] == ["true centre", "tracked box", "constant position"]
    assert np.allclose(markers[0].x, [0.0, 3.0 + 18, 6.0 + 36])  # frame i sits i * (16 + 2) px to the right
    lines = [t for t in fig.data if t.type == "scatter" and t.mode == "lines+markers"]
    assert [list(t.x) for t in lines] == [[9, 13], [9, 13]] and list(lines[1].y) == [3.0, 10.0]
    text = vt.propagation_text(moving_video(), result)
    assert "2.0 px for the tracked box, 6.5 px if it stays put" in text and "closer to" in text
    with pytest.raises(ValueError):
        vt.propagation_errors(np.zeros((1, 2)), np.zeros((1, 2)), [0])


def test_tracking_videos_read_the_renderers_centres(tmp_path):
    p = sample_params("MoveRight", np.random.default_rng(2), size=64, num_frames=40, version=3)
    record = {**params_record(p), "path": "videos/MoveRight/v_MoveRight_g01_c01.mp4", "group": 1}
    (tmp_path / "synthetic.json").write_text(json.dumps({"videos": [record]}))
    videos = vt.tracking_videos(tmp_path, ["/store/v_MoveRight_g01_c01.mp4", "/store/v_other.mp4"], size=32)
    assert [v.name for v in videos] == ["v_MoveRight_g01_c01"]
    assert np.allclose(videos[0].centres, object_centres(p) / 2) and videos[0].radius == p.radius / 2
    for s in videos[0].windows(steps=2, gap=3):
        window = videos[0].centres[s : s + 7]
        assert (window >= 1.2 * videos[0].radius).all() and (window <= 32 - 1.2 * videos[0].radius).all()


def test_propagation_explorer_offers_only_valid_choices():
    module, backbone = still_tracker()
    short = vt.TrackVideo("v_short", __import__("pathlib").Path("/x/v_short.mp4"), moving_video().centres[:9], 1.0, 16)
    outside = vt.TrackVideo("v_out", __import__("pathlib").Path("/x/v_out.mp4"), np.full((60, 2), -5.0), 1.0, 16)
    assert vt.longest_window(short, gap=4, max_steps=6) == 2 and vt.longest_window(outside, gap=4, max_steps=6) == 0
    shown = []
    box = vt.propagation_explorer(module, backbone, StillSource(), [moving_video(), short, outside], gap=4, steps=3,
                                  display=shown.append)
    (video, _method, steps), (start, x, y), text, _out = box.children[0].children, box.children[1].children, \
        *box.children[2:]
    assert list(video.options) == ["v_a", "v_short"]  # v_out's object is never inside the frame
    assert steps.value == 3 and steps.max == 6
    assert (x.value, y.value) == (4, 8) and start.value == 0  # the box starts on the object
    assert isinstance(shown[-1], go.Figure) and "stays put" in text.value
    x.value = 12
    tracked = shown[-1].data[2]
    assert np.allclose(tracked.y, [8.0] * 4, atol=0.05) and np.allclose(tracked.customdata[0], [12, 8], atol=0.05)
    start.value = start.options[5]
    assert x.value == round(moving_video().centres[start.value][0])  # a new window puts the box back on the object
    video.value = "v_short"  # 9 frames hold at most 2 steps of 4: the slider stops there
    assert steps.max == 2 and steps.value == 2 and list(start.options) == [0]
    assert shown[-1].data[2].x.shape == (3,) and "v_short" in text.value


def test_loss_terms_figure_panels_follow_the_logged_terms():
    rows = [{"step": s, "cls.class_loss": 2.6, "dir.direction_loss": 0.7, "track.sim": -0.7, "track.long": 0.4,
             "track.skip": 0.41} for s in (10, 20, 30)]
    fig = vt.loss_terms_figure(rows)
    assert [t.name for t in fig.data] == ["classification l_cls", "direction l_dir", "track: l_sim", "track: l_long",
                                          "track: l_skip"]
    assert fig.layout.yaxis.title.text == "cross-entropy (nats)" and fig.layout.yaxis3.title.text.startswith("grid")
    only_cls = vt.loss_terms_figure([{"step": 1, "cls.class_loss": 2.0}])
    assert len(only_cls.data) == 1 and "yaxis2" not in only_cls.layout.to_plotly_json()
    with pytest.raises(ValueError, match="none of the joint loss terms"):
        vt.loss_terms_figure([{"step": 1, "loss": 2.0}])


def test_term_trends_never_call_a_level_term_falling():
    rows = [{"step": 2, "a": 2.7, "b": 0.371, "c": -0.6}, {"step": 20, "a": 2.4, "b": 0.3709, "c": -0.5}]
    lines = vt.term_trends(rows, ["a", "b", "c", "missing"])
    assert lines == ["a: step 2 2.700, step 20 2.400: fell", "b: step 2 0.371, step 20 0.371: stayed level",
                     "c: step 2 -0.600, step 20 -0.500: rose"]


def test_readings_follow_the_numbers():
    reading = vt.direction_reading({"v2": {"direction_accuracy": 0.51, "direction_clips": 400},
                                    "v3": {"direction_accuracy": 0.75, "direction_clips": 400},
                                    "bad": {"direction_accuracy": 0.30, "direction_clips": 400}})
    lines = reading.splitlines()
    assert "indistinguishable from chance" in lines[0] and "50 ± 4.9 %" in lines[0]
    assert "above chance" in lines[1] and "below chance" in lines[2]

    def arm(hit1, videos=42, **extra):
        return {"classification": {"hit_at_1": hit1, "hit_at_5": 0.4, "videos": videos}, **extra}

    scores = {"classification only": arm(0.10),
              "cls + tracking + direction": arm(0.12, direction={"direction_accuracy": 0.5},
                                                tracking={"centre_error_px": 9.0, "constant_baseline_px": 8.0}),
              "much better": arm(0.60)}
    md = vt.comparison_markdown(scores)
    assert "| classification only | 10.0 | 40.0 | — | — | — |" in md
    assert "| cls + tracking + direction | 12.0 | 40.0 | 50.0 | 9.00 | 8.00 |" in md
    reading = vt.comparison_reading(scores, baseline="classification only", steps=24).splitlines()
    assert "+2.0 points" in reading[0] and "no difference this test set can show" in reading[0]
    assert "24 steps" in reading[0] and reading[1].endswith("better (one seed, 24 steps)")


def test_direction_figure_bars_against_the_chance_band():
    fig = vt.direction_figure({"version 2": {"direction_accuracy": 0.5, "direction_clips": 100},
                               "version 3": {"direction_accuracy": 0.8, "direction_clips": 400}})
    (bars,) = fig.data
    assert list(bars.x) == ["version 2", "version 3"] and np.allclose(bars.y, [50.0, 80.0])
    bands = [s for s in fig.layout.shapes if s.type == "rect"]
    assert [round(b.y1 - 50, 1) for b in bands] == [9.8, 4.9]  # 1.96 * sqrt(0.25 / n) in %
    assert any(s.type == "line" and s.y0 == 50 for s in fig.layout.shapes)


def test_committed_reproduction_says_when_it_is_missing(tmp_path):
    from vsslkit.classroom import committed_from_scratch_table

    line = committed_from_scratch_table(tmp_path / "from_scratch_reproduce.json")
    assert line.startswith("`from_scratch_reproduce.json`: not committed yet")
