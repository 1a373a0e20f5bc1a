"""Frame-index plans: property tests over many random draws (fixed seeds) plus table cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vsslkit.plans import (
    VideoTooShortError,
    constant_plan_at,
    constant_span,
    max_span,
    speed_change_indices,
    speed_change_plan,
    speed_change_span,
)


@st.composite
def speed_change_args(draw):
    clip_len = draw(st.integers(3, 32))
    r1, r2 = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    change_at = draw(st.integers(2, clip_len - 1))
    span = speed_change_span(clip_len, r1, r2, change_at)
    num_frames = draw(st.integers(span, span + 50))
    seed = draw(st.integers(0, 2**32 - 1))
    return clip_len, r1, r2, change_at, num_frames, seed


@settings(max_examples=300, deadline=None, derandomize=True)
@given(speed_change_args())
def test_speed_change_plan_properties(args):
    clip_len, r1, r2, change_at, num_frames, seed = args
    plan = speed_change_plan(num_frames, clip_len, r1, r2, change_at, np.random.default_rng(seed))
    idx = plan.indices
    steps = np.diff(idx)
    assert len(idx) == clip_len
    assert idx.min() >= 0 and idx.max() < num_frames  # fits, no wrapping
    assert np.all(steps > 0)  # strictly increasing
    assert np.all(steps[: change_at - 1] == r1)  # first part: frames [0, change_at) at r1
    assert np.all(steps[change_at - 1 :] == r2)  # the step into frame change_at and after: r2
    assert idx[-1] - idx[0] + 1 == speed_change_span(clip_len, r1, r2, change_at)
    assert plan.params == {"r1": r1, "r2": r2, "change_at": change_at, "start": int(idx[0])}
    again = speed_change_plan(num_frames, clip_len, r1, r2, change_at, np.random.default_rng(seed))
    np.testing.assert_array_equal(again.indices, idx)  # deterministic for a seed


def test_speed_change_figure_example():
    # Thesis fig. 3.2 style: K=8, jump-up (1, 2) at the middle c[4].
    np.testing.assert_array_equal(speed_change_indices(0, 8, 1, 2, 4), [0, 1, 2, 3, 5, 7, 9, 11])
    np.testing.assert_array_equal(speed_change_indices(10, 8, 3, 1, 4), [10, 13, 16, 19, 20, 21, 22, 23])


def test_start_is_uniform_over_every_fitting_position():
    span = speed_change_span(16, 1, 3, 8)
    starts = [speed_change_plan(span + 4, 16, 1, 3, 8, np.random.default_rng(s)).params["start"] for s in range(500)]
    assert set(starts) == {0, 1, 2, 3, 4}  # both ends reachable, nothing past the end


@pytest.mark.parametrize(
    "num_frames, clip_len, r1, r2, change_at, error",
    [
        (46, 16, 3, 3, 8, None),  # exactly the span fits
        (45, 16, 3, 3, 8, VideoTooShortError),
        (100, 16, 1, 2, 1, ValueError),  # no r1 step would be visible
        (100, 16, 1, 2, 16, ValueError),  # no r2 step would be visible
        (100, 16, 0, 2, 8, ValueError),
    ],
)
def test_speed_change_plan_table(num_frames, clip_len, r1, r2, change_at, error):
    rng = np.random.default_rng(0)
    if error is None:
        assert len(speed_change_plan(num_frames, clip_len, r1, r2, change_at, rng)) == clip_len
    else:
        with pytest.raises(error):
            speed_change_plan(num_frames, clip_len, r1, r2, change_at, rng)


def test_too_short_error_names_the_need():
    with pytest.raises(VideoTooShortError, match="needs 46 frames, video has 40") as info:
        speed_change_plan(40, 16, 3, 3, 8, np.random.default_rng(0))
    assert (info.value.needed, info.value.available) == (46, 40)


def test_fixed_start_plans():
    plan = speed_change_plan(50, 8, 2, 1, 3, np.random.default_rng(0), start=7)
    np.testing.assert_array_equal(plan.indices, [7, 9, 11, 12, 13, 14, 15, 16])
    assert constant_plan_at(20, 4, 3, 10).indices.tolist() == [10, 13, 16, 19]
    with pytest.raises(ValueError, match="does not fit"):
        constant_plan_at(20, 4, 3, 11)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.integers(2, 32), st.lists(st.integers(1, 8), min_size=1, max_size=5))
def test_max_span_bounds_every_plan_from_those_strides(clip_len, strides):
    bound = max_span(clip_len, strides)
    spans = [constant_span(clip_len, s) for s in strides]
    if clip_len >= 3:
        spans += [speed_change_span(clip_len, a, b, c) for a in strides for b in strides for c in range(2, clip_len)]
    assert max(spans) == bound  # the bound is attained (by the fastest constant clip)
