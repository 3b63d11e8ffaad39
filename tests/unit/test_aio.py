"""Waiting with a time limit keeps a cancellation that arrives in the same loop turn as the
awaited thing completes (Python 3.11's asyncio.wait_for loses it: a loop polling an event
then never stops, and the stop() awaiting it hangs)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable

import pytest

from rowcast.aio import wait_event, within


async def _poll_forever(
    wait: Callable[[asyncio.Event], Awaitable[object]], event: asyncio.Event
) -> None:
    while True:
        await wait(event)
        event.clear()


async def _cancel_as_the_event_fires(wait: Callable[[asyncio.Event], Awaitable[object]]) -> bool:
    """True when the polling task ends on cancel issued right after the event completed."""
    event = asyncio.Event()
    task = asyncio.create_task(_poll_forever(wait, event))
    await asyncio.sleep(0.01)
    event.set()
    await asyncio.sleep(0)  # the event's waiter completes; the poller has not resumed yet
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=1.0)
    if not done:
        task.cancel()  # a second cancel arrives at an ordinary await point
        await asyncio.wait({task}, timeout=1.0)
        return False
    return task.cancelled()


async def _suppressed(awaitable: Awaitable[object]) -> None:
    with contextlib.suppress(TimeoutError):
        await awaitable


async def test_wait_event_keeps_a_cancel_that_races_with_the_event() -> None:
    assert await _cancel_as_the_event_fires(lambda e: wait_event(e, 1.0))


async def test_within_keeps_a_cancel_that_races_with_the_result() -> None:
    assert await _cancel_as_the_event_fires(lambda e: _suppressed(within(e.wait(), 1.0)))


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="wait_for keeps cancels from 3.12 on")
async def test_asyncio_wait_for_loses_that_cancel_on_this_python() -> None:
    """The fault the helpers exist for: this is what a poller built on wait_for does."""
    assert not await _cancel_as_the_event_fires(
        lambda e: _suppressed(asyncio.wait_for(e.wait(), 1.0))
    )


async def test_within_times_out_and_cancels_what_it_awaited() -> None:
    never = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        await within(never, 0.01)
    assert never.cancelled()


async def test_within_without_a_limit_waits() -> None:
    assert await within(asyncio.sleep(0.01, "done"), None) == "done"


async def test_wait_event_says_whether_the_event_was_set() -> None:
    event = asyncio.Event()
    assert not await wait_event(event, 0.01)
    event.set()
    assert await wait_event(event, 0.01)
