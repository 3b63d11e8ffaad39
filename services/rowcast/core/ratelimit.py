"""A token bucket in rows per second: how bulk jobs (materialisation, export) yield to serving.

Bulk writes and scans share HBase with the prediction servers; left unpaced, a job that writes
as fast as it can pushes Predict latency past its goals. Jobs ask the bucket before each batch
and wait when it is empty, so their long-run rate never exceeds the configured rows/s.

A batch larger than the bucket's burst is still granted once the bucket is full, leaving the
bucket in debt (negative) that later batches wait off: the long-run rate holds for any batch
size, and a job never deadlocks on a batch it cannot split. Over any interval of length t the
bucket grants at most `burst + rate * t + max(0, largest batch - burst)` rows.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

Clock = Callable[[], float]

_SLACK = 1e-9


class TokenBucket:
    """Paces a bulk job to at most `rate` rows per second (None: unlimited, never waits)."""

    def __init__(
        self, rate: float | None, burst: float | None = None, clock: Clock = time.monotonic
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive or None, got {rate}")
        self._rate = rate
        # Default burst: a quarter second of rows, so the bucket smooths rather than batches.
        self._burst = float(burst) if burst is not None else (rate / 4 if rate else 0.0)
        if self._burst < 0:
            raise ValueError(f"burst must not be negative, got {burst}")
        self._clock = clock
        self._tokens = self._burst
        self._last = clock()
        # Export may call from several threads; materialisation from one event loop.
        self._lock = threading.Lock()

    @property
    def rate(self) -> float | None:
        return self._rate

    @property
    def burst(self) -> float:
        return self._burst

    def _refill(self) -> None:
        assert self._rate is not None
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now

    def try_take(self, rows: int) -> float:
        """Take `rows` tokens if they are there and return 0.0; otherwise take nothing and
        return how many seconds to wait before asking again."""
        if self._rate is None or rows <= 0:
            return 0.0
        with self._lock:
            self._refill()
            need = min(float(rows), self._burst)
            # A relative slack so that waiting exactly the time returned always suffices:
            # refilling by floating-point arithmetic may land a hair short of `need`.
            if self._tokens >= need - _SLACK * max(1.0, need):
                self._tokens -= rows
                return 0.0
            return (need - self._tokens) / self._rate

    def take(self, rows: int, cancel: threading.Event | None = None) -> bool:
        """Block until `rows` tokens are taken; False (nothing taken) if `cancel` is set first."""
        while True:
            if cancel is not None and cancel.is_set():
                return False
            wait = self.try_take(rows)
            if wait <= 0:
                return True
            if cancel is None:
                time.sleep(wait)
            elif cancel.wait(wait):
                return False

    async def take_async(self, rows: int) -> None:
        """Wait (without blocking the event loop) until `rows` tokens are taken."""
        # Waiting for time to pass, not for another task: there is no event to wait on.
        while (wait := self.try_take(rows)) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)
