"""The diff histogram: every bucket is [lower, upper) on both sides of zero, as the
HistogramBucket message promises."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rowcast.jobs.diff import ABS_EDGES, Histogram


def bucket_of(delta: float) -> tuple[float, float]:
    histogram = Histogram()
    histogram.add(delta)
    [(lower, upper, count)] = histogram.buckets()
    assert count == 1
    return lower, upper


@pytest.mark.parametrize(
    ("delta", "bucket"),
    [
        (-0.01, (-0.01, -0.001)),
        (-0.011, (-0.02, -0.01)),
        (-0.0099, (-0.01, -0.001)),
        (-1.0, (-1.0, -0.5)),
        (-1.5, (-float("inf"), -1.0)),
        (-1e-7, (-1e-6, -0.0)),
        (0.0, (0.0, 1e-6)),
        (0.01, (0.01, 0.02)),
        (0.0099, (0.001, 0.01)),
        (1.0, (1.0, float("inf"))),
    ],
)
def test_an_edge_belongs_to_the_bucket_it_opens(delta: float, bucket: tuple[float, float]) -> None:
    """A delta equal to a bucket edge falls in the bucket whose inclusive lower bound it is:
    -0.01 in [-0.01, -0.001), not in [-0.02, -0.01); 0.01 in [0.01, 0.02)."""
    assert bucket_of(delta) == bucket


@given(
    st.one_of(
        st.floats(-10.0, 10.0, allow_nan=False),
        st.sampled_from([s * e for e in ABS_EDGES[1:-1] for s in (-1.0, 1.0)]),
    )
)
def test_every_delta_lies_in_its_bucket_lower_inclusive_upper_exclusive(delta: float) -> None:
    """Whatever the delta, lower <= delta < upper for the one bucket that counts it."""
    lower, upper = bucket_of(delta)
    assert lower <= delta < upper


def test_buckets_ascend_and_count_every_delta() -> None:
    """Buckets come out in ascending order, without overlaps, and their counts add up."""
    histogram = Histogram()
    deltas = [-2.0, -0.3, -0.3, -0.01, -1e-9, 0.0, 5e-4, 0.01, 0.7, 3.0]
    for d in deltas:
        histogram.add(d)
    buckets = histogram.buckets()
    assert sum(c for _, _, c in buckets) == len(deltas)
    for (_, upper, _), (lower, _, _) in itertools.pairwise(buckets):
        assert upper <= lower
