"""Keeps measurements off a busy machine: wait for other processes to go quiet before a run,
and repeat a run that someone else's load spoiled, keeping the cleanest attempt."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rowcast_bench.cpu import CpuMeter
from rowcast_bench.measurement import Measurement

#: Seconds of each background-CPU sample while waiting for quiet.
_SAMPLE_S = 1.0


@dataclass(frozen=True)
class QuietGate:
    """Attempts of one measurement, each after waiting for quiet.

    `max_other_cores`: CPU (in cores) that processes outside the benchmark may use before a run
    counts as disturbed; `attempts`: runs at most per measurement; `wait_s`: how long to wait
    for quiet before each attempt (then it runs anyway, and its report says how busy it was).
    """

    max_other_cores: float
    attempts: int
    wait_s: float
    say: Callable[[str], None]

    def wait(self, ours: Callable[[], Iterable[int]]) -> float:
        """Block until others use at most max_other_cores over one sample, or wait_s passed;
        returns the last sample (0 without sampling when wait_s is 0)."""
        if self.wait_s <= 0:
            return 0.0
        deadline = time.monotonic() + self.wait_s
        while True:
            meter = CpuMeter(ours)
            meter.start()
            time.sleep(_SAMPLE_S)
            other = meter.stop().other_cores
            if other <= self.max_other_cores or time.monotonic() >= deadline:
                return other

    def run(
        self, name: str, ours: Callable[[], Iterable[int]], measure: Callable[[], Measurement]
    ) -> Measurement:
        """The attempt with the least outside load (the first undisturbed one, if any)."""
        best: Measurement | None = None
        for attempt in range(1, self.attempts + 1):
            background = self.wait(ours)
            if background > self.max_other_cores:
                self.say(f"    machine busy (others use {background:.2f} cores); running anyway")
            m = measure()
            if best is None or _other(m) < _other(best):
                best = m
            if _other(m) <= self.max_other_cores:
                break
            if attempt < self.attempts:
                self.say(f"    {name}: others used {_other(m):.2f} cores; measuring again")
        assert best is not None
        return best


def _other(m: Measurement) -> float:
    return m.other_cores if m.other_cores is not None else 0.0
