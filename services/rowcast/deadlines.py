"""How long a store call may take: the caller's remaining deadline, capped."""

from __future__ import annotations

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
