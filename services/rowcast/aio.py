"""Waiting with a time limit without losing a cancellation.

Python 3.11's `asyncio.wait_for` returns the inner result when the caller is cancelled in the
same loop turn as the inner awaitable completes (cpython gh-86296, fixed in 3.12 by building
`wait_for` on `asyncio.timeout`): the cancellation is lost. In a loop (a sender polling for
new records, a watcher waiting for a wake-up) a lost cancellation is a task that never ends,
and the `stop()` awaiting it hangs. These helpers are built on `asyncio.timeout`, which keeps
it; rowcast code uses them instead of `asyncio.wait_for` (ruff rule TID251 in pyproject.toml
bans it outside the tests)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], timeout_s: float | None) -> T:
    """Await `awaitable`; TimeoutError (and the awaitable cancelled) after `timeout_s` seconds
    (None: no limit). A cancellation of the caller always propagates."""
    if timeout_s is None:
        return await awaitable
    async with asyncio.timeout(timeout_s):
        return await awaitable


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until `event` is set or `timeout_s` seconds pass; True when it is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()
    return event.is_set()
