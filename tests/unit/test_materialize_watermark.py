"""The materialisation watermark and the chunk driver, without HBase or worker processes."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rowcast.core.ratelimit import TokenBucket
from rowcast.jobs.workers import ChunkDone, ChunkDriver, ChunkTask, Watermark


@st.composite
def runs(draw: st.DrawFn) -> tuple[int, int, int, list[int]]:
    """(start, total, chunk rows, completion order of a subset of the run's chunks)."""
    total = draw(st.integers(min_value=0, max_value=5_000))
    start = draw(st.integers(min_value=0, max_value=total))
    chunk = draw(st.integers(min_value=1, max_value=700))
    chunks = -(-(total - start) // chunk)
    done = draw(st.lists(st.integers(min_value=0, max_value=max(0, chunks - 1)), unique=True))
    return start, total, chunk, done if chunks else []


@given(runs())
def test_watermark_is_the_contiguous_prefix_in_any_order(
    run: tuple[int, int, int, list[int]],
) -> None:
    """Whatever order chunks finish in, the watermark is the end of the lowest contiguous run
    of finished chunks from the start, and the digest sums exactly those chunks (mod 2**64)."""
    start, total, chunk, order = run
    mark = Watermark(start, total, chunk, digest=0xABC)
    finished: set[int] = set()
    for index in order:
        mark.complete(index, digest=2**64 - 1 - index * 7919)
        finished.add(index)
        prefix = 0
        while prefix in finished:
            prefix += 1
        assert mark.rows_done == min(total, start + prefix * chunk)
        expected = 0xABC
        for i in range(prefix):
            expected = (expected + 2**64 - 1 - i * 7919) % 2**64
        assert mark.digest == expected
    assert mark.finished == (len(finished) == mark.chunks)


@given(runs())
def test_chunks_tile_the_rest_of_the_grid(run: tuple[int, int, int, list[int]]) -> None:
    """The run's chunks cover [start, total) exactly once, in order, none empty."""
    start, total, chunk, _ = run
    mark = Watermark(start, total, chunk)
    edge = start
    for i in range(mark.chunks):
        task = mark.task(i)
        assert task.start == edge and task.stop > task.start
        edge = task.stop
    assert edge == total


def test_repeated_completion_changes_nothing() -> None:
    mark = Watermark(0, 100, 10)
    mark.complete(0, 5)
    mark.complete(0, 5)
    mark.complete(2, 9)
    mark.complete(2, 9)
    assert (mark.rows_done, mark.digest) == (10, 5)
    mark.complete(1, 3)
    assert (mark.rows_done, mark.digest) == (30, 5 + 3 + 9)


def test_unknown_chunk_is_refused() -> None:
    with pytest.raises(ValueError):
        Watermark(0, 100, 10).complete(10)


class FakeWork:
    """Completes chunks after a per-chunk delay (later chunks may finish first)."""

    def __init__(self, delays: dict[int, float] | None = None, fail: int | None = None) -> None:
        self.delays = delays or {}
        self.fail = fail
        self.seen: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, task: ChunkTask) -> ChunkDone:
        time.sleep(self.delays.get(task.index, 0.001))
        with self.lock:
            self.seen.append(task.index)
        if task.index == self.fail:
            raise RuntimeError(f"chunk {task.index} broke")
        return ChunkDone(task.index, task.stop - task.start, task.index, 0.0, 0.0)


def drive(
    mark: Watermark,
    work: FakeWork,
    cancel: threading.Event | None = None,
    rate: float | None = None,
    window: int = 4,
) -> tuple[bool, ChunkDriver, list[int]]:
    ticks: list[int] = []

    async def run() -> tuple[bool, ChunkDriver]:
        async def tick() -> None:
            ticks.append(mark.rows_done)

        with ThreadPoolExecutor(max_workers=3) as pool:
            bucket = TokenBucket(rate, burst=100)
            driver = ChunkDriver(pool, mark, window, bucket, cancel, tick, work)
            return await driver.run(), driver

    finished, driver = asyncio.run(run())
    return finished, driver, ticks


def test_driver_writes_every_chunk_out_of_order() -> None:
    """Chunk 0 finishing last still ends with the whole grid done and each chunk written once."""
    mark = Watermark(0, 1_000, 100)
    work = FakeWork(delays={0: 0.2})
    finished, driver, ticks = drive(mark, work)
    assert finished and mark.rows_done == 1_000
    assert sorted(work.seen) == list(range(10))
    assert driver.rows_written == 1_000
    assert ticks == sorted(ticks)


def test_driver_stops_on_cancel_after_chunks_in_flight() -> None:
    """Once cancelled, no new chunk starts; chunks in flight are collected into the watermark."""
    mark = Watermark(0, 10_000, 100)
    cancel = threading.Event()
    work = FakeWork(delays=dict.fromkeys(range(100), 0.01))
    work.delays[3] = 0.1
    threading.Timer(0.05, cancel.set).start()
    finished, _, _ = drive(mark, work, cancel)
    assert not finished
    assert len(work.seen) < 100
    # Everything handed out was collected, so the watermark covers a contiguous prefix of it.
    assert mark.rows_done == len(work.seen) * 100 == max(work.seen) * 100 + 100


def test_driver_raises_the_worker_error_after_draining() -> None:
    """A failing chunk stops dispatch; the error surfaces once chunks in flight are collected."""
    mark = Watermark(0, 10_000, 100)
    work = FakeWork(fail=5)
    with pytest.raises(RuntimeError, match="chunk 5 broke"):
        drive(mark, work)
    assert mark.rows_done <= 500
    assert len(work.seen) < 100


def test_driver_honours_the_rate_limit() -> None:
    """At 2,000 rows/s, 1,000 rows past the first 100-row chunk take about half a second."""
    mark = Watermark(0, 1_100, 100)
    started = time.monotonic()
    finished, _, _ = drive(mark, FakeWork(), rate=2_000.0)
    elapsed = time.monotonic() - started
    assert finished
    assert 0.4 <= elapsed < 5.0
