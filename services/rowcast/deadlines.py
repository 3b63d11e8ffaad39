"""How long a store call may take: the caller's remaining deadline, capped."""

from __future__ import annotations

import grpc


def remaining_s(context: grpc.aio.ServicerContext[object, object], cap_s: float) -> float:
    """The caller's remaining time, capped at cap_s: what one store call may take."""
    remaining = context.time_remaining()
    return cap_s if remaining is None else min(remaining, cap_s)
