"""The token bucket that paces bulk jobs, driven by a fake clock."""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rowcast.core.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def take(bucket: TokenBucket, clock: FakeClock, rows: int) -> None:
    """Wait (on the fake clock) exactly as long as the bucket says, which must suffice."""
    wait = bucket.try_take(rows)
    if wait > 0:
        clock.now += wait
        assert bucket.try_take(rows) == 0.0


def test_unlimited_never_waits() -> None:
    """rate=None grants any request at once."""
    bucket = TokenBucket(None)
    assert all(bucket.try_take(10**9) == 0.0 for _ in range(100))


def test_waits_for_missing_tokens() -> None:
    """An empty bucket says how long until the request fits, and takes nothing meanwhile."""
    clock = FakeClock()
    bucket = TokenBucket(100.0, burst=50, clock=clock)
    assert bucket.try_take(50) == 0.0
    assert bucket.try_take(50) == pytest.approx(0.5)
    clock.now = 0.25
    assert bucket.try_take(50) == pytest.approx(0.25)
    clock.now = 0.5
    assert bucket.try_take(50) == 0.0


def test_batch_larger_than_burst_goes_into_debt() -> None:
    """A batch above the burst is granted when the bucket is full; later batches pay it off."""
    clock = FakeClock()
    bucket = TokenBucket(100.0, burst=10, clock=clock)
    assert bucket.try_take(1_000) == 0.0
    # 990 tokens of debt + 10 needed at 100/s.
    assert bucket.try_take(10) == pytest.approx(10.0)


def test_invalid_rates_are_refused() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0.0)
    with pytest.raises(ValueError):
        TokenBucket(10.0, burst=-1)


@given(
    rate=st.floats(min_value=1.0, max_value=1e6),
    burst=st.integers(min_value=0, max_value=10_000),
    requests=st.lists(st.integers(min_value=1, max_value=20_000), min_size=1, max_size=60),
)
def test_long_run_rate_is_bounded(rate: float, burst: int, requests: list[int]) -> None:
    """Taking every request as early as allowed, rows granted by time t never exceed
    burst + rate * t + (largest request - burst, when positive)."""
    clock = FakeClock()
    bucket = TokenBucket(rate, burst=burst, clock=clock)
    granted = 0
    slack = max(0, max(requests) - burst)
    for rows in requests:
        take(bucket, clock, rows)
        granted += rows
        assert granted <= burst + rate * clock.now + slack + 1e-6 * granted + 1


@given(requests=st.lists(st.integers(min_value=1, max_value=500), min_size=5, max_size=50))
def test_rate_is_reached_when_always_asking(requests: list[int]) -> None:
    """A job that always asks is not held back below the rate (within one request)."""
    clock = FakeClock()
    rate = 1_000.0
    bucket = TokenBucket(rate, burst=500, clock=clock)
    granted = 0
    for rows in requests:
        take(bucket, clock, rows)
        granted += rows
    assert granted >= rate * clock.now - 1e-6


def test_take_returns_false_when_cancelled() -> None:
    """A blocking take gives up (taking nothing) once the cancel event is set."""
    bucket = TokenBucket(1.0, burst=1)
    assert bucket.take(1)
    cancel = threading.Event()
    timer = threading.Timer(0.05, cancel.set)
    timer.start()
    try:
        assert bucket.take(100, cancel) is False
    finally:
        timer.cancel()


def test_take_async_paces_without_blocking_the_loop() -> None:
    """take_async sleeps on the event loop until the tokens are there."""

    async def run() -> float:
        bucket = TokenBucket(200.0, burst=10)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(5):
            await bucket.take_async(10)
        return loop.time() - started

    elapsed = asyncio.run(run())
    assert 0.15 <= elapsed < 2.0  # 40 rows beyond the burst at 200 rows/s
