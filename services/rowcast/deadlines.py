"""How long a store call may take: the caller's remaining deadline, capped."""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc


def remaining_s(context: grpc.aio.ServicerContext[object, object], cap_s: float) -> float:
    """The caller's remaining time, capped at cap_s: what one store call may take."""
    remaining = context.time_remaining()
    return cap_s if remaining is None else min(remaining, cap_s)


def within_deadline(timeout_s: float) -> float:
    """How long to wait for a store answer so that our reply still reaches the caller in
    time: the remaining time less a margin of 10 % (between 2 ms and 50 ms)."""
    margin = min(max(timeout_s * 0.1, 0.002), 0.05)
    return max(timeout_s - margin, 0.001)


@dataclass(frozen=True)
class Budget:
    """One deadline shared by several store calls in a row: each gets the time left."""

    #: time.monotonic() at which the budget runs out.
    deadline: float

    @classmethod
    def of(cls, timeout_s: float) -> Budget:
        return cls(time.monotonic() + timeout_s)

    def left_s(self) -> float:
        """Seconds left (zero or less once spent: a store call then fails at once)."""
        return self.deadline - time.monotonic()
