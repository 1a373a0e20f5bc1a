"""Widget callbacks are plain functions: test them without a browser."""

import numpy as np
import pytest

from vsslkit.tasks import make_task
from vsslkit.viz import widgets


class ArrayFrames:
    def __init__(self, n=120):
        self.frames = np.zeros((n, 8, 8, 3), np.uint8)
        self.frames[:, 0, 0, 0] = np.arange(n)
        self.reads = []

    def num_frames(self, path):
        return len(self.frames)

    def read(self, path, indices):
        self.reads.append(list(indices))
        return self.frames[np.asarray(indices)]


@pytest.mark.parametrize(
    "task, r1, r2, m, labels, steps",
    [
        ("pace", 3, 1, 5, {"speed": 2}, [3] * 15),
        ("speed-change-coarse", 1, 3, 9, {"speed": 5}, [1] * 7 + [3] * 8),  # jump-up j=2, change at K/2=8
        ("speed-change-coarse", 2, 2, 9, {"speed": 1}, [2] * 15),
        ("speed-change-fine", 3, 1, 7, {"speed": 6, "loc": 2}, [3] * 6 + [1] * 9),
        ("speed-change-fine", 2, 2, 7, {"speed": 4, "loc": 6}, [2] * 15),
    ],
)
def test_build_clip_labels_and_strides(task, r1, r2, m, labels, steps):
    choice = widgets.build_clip(task, 100, r1=r1, r2=r2, m=m, clip_len=16, start=10)
    assert choice.error is None
    assert choice.labels == labels
    assert np.diff(choice.plan.indices).tolist() == steps
    assert choice.plan.indices[0] == 10


def test_build_clip_clamps_start_and_reports_errors():
    choice = widgets.build_clip("pace", 40, r1=2, r2=2, clip_len=16, start=1000)
    assert choice.plan.indices[-1] == 39
    too_short = widgets.build_clip("pace", 20, r1=4, r2=4, clip_len=16)
    assert too_short.plan is None and "needs 61 frames" in too_short.error
    out_of_pool = widgets.build_clip("speed-change-fine", 100, r1=4, r2=1, m=6)
    assert out_of_pool.plan is None and "pool" in out_of_pool.error


def test_label_frequencies_location_primary_gives_one_seventh_constant():
    table = widgets.label_frequencies(make_task("speed-change-fine", clip_len=16), draws=7000, seed=0)
    loc = table["loc"]
    assert len(loc) == 7 and loc[6]["meaning"] == "constant" and loc[0]["meaning"] == "m=5"
    assert abs(loc[6]["share"] - 1 / 7) < 0.015
    assert sum(r["count"] for r in table["speed"]) == 7000
    md = widgets.frequency_markdown(table)
    assert "| 6 | constant |" in md and "| (3,3) |" in md


def test_clip_builder_widget_callback_redraws_on_change():
    frames = ArrayFrames()
    shown = []
    box = widgets.clip_builder([("a", "a.mp4")], frames, clip_len=16, display=shown.append)
    sliders = {c.description: c for row in box.children[:2] for c in row.children}
    sliders["task"].value = "pace"
    sliders["r1"].value = 2
    assert frames.reads[-1] == list(range(0, 31, 2))
    assert "speed = 1" in box.children[2].value
    sliders["r1"].value = 4
    sliders["start"].value = 100  # clamped so the clip fits: last index 119
    assert frames.reads[-1][-1] == 119
    assert box.children[4].value[:4] == b"\x89PNG"


@pytest.mark.parametrize("task", widgets.CLIP_TASKS)
def test_clip_ranges_offer_only_values_the_task_accepts(task):
    """Every (r1, r2, m) the sliders allow builds a clip; what they hide is what the task ignores."""
    for r1 in range(1, 6):
        ranges = widgets.clip_ranges(task, r1=r1, r2=1, clip_len=16)
        lo, hi = ranges["r1"]
        if not lo <= r1 <= hi:
            continue
        r2_values = range(ranges["r2"][0], ranges["r2"][1] + 1) if ranges["r2"] else [r1]
        for r2 in r2_values:
            m_range = widgets.clip_ranges(task, r1=r1, r2=r2, clip_len=16)["m"]
            for m in (range(m_range[0], m_range[1] + 1) if m_range else [None]):
                choice = widgets.build_clip(task, 400, r1=r1, r2=r2, m=m, clip_len=16)
                assert choice.error is None, (task, r1, r2, m, choice.error)
    assert widgets.clip_ranges("pace", r1=2, r2=3)["r2"] is None  # pace ignores r2 and m: hidden
    assert widgets.clip_ranges("speed-change-fine", r1=1, r2=4)["r2"] == (1, 3)
    assert widgets.clip_ranges("speed-change-fine", r1=2, r2=2)["m"] is None  # constant clip: no change
    assert widgets.clip_ranges("speed-change-coarse", r1=1, r2=1)["r2"] == (1, 3)  # jumps of 1 or 2 only


def test_clip_builder_follows_the_task_and_never_keeps_a_stale_clip():
    frames = ArrayFrames()
    box = widgets.clip_builder([("a", "a.mp4")], frames, clip_len=16, display=lambda fig: None)
    controls = {c.description: c for row in box.children[:2] for c in row.children}
    r1, r2, m, start = (controls[k] for k in ("r1", "r2", "change m", "start"))
    assert (r1.max, r2.max, m.min, m.max) == (3, 3, 5, 10)  # the fine task's pool and change locations
    r2.value = 4  # beyond the pool: clamped by the slider, never an invalid clip
    assert r2.value == 3 and "r2=3" in box.children[2].value
    before = frames.reads[-1]
    m.value = 9
    assert frames.reads[-1] != before  # every move redraws the clip
    r2.value = 1  # constant clip: m means nothing, so it is hidden
    r2.value = r1.value
    assert m.layout.display == "none"
    controls["task"].value = "pace"
    assert r2.layout.display == "none" and m.layout.display == "none" and r1.max == 4
    r1.value = 4
    assert start.max == 120 - 61  # the last start at which a stride-4 clip fits
    controls["task"].value = "speed-change-coarse"
    assert r2.layout.display is None and (r2.min, r2.max) == (2, 4)  # r1 = 4: jumps of at most 2
    short = ArrayFrames(n=20)
    box = widgets.clip_builder([("short", "s.mp4")], short, clip_len=16, display=lambda fig: None)
    timeline, strip = box.children[3], box.children[4]
    assert "not possible" in box.children[2].value
    assert timeline.layout.display == "none" and strip.layout.display == "none"
