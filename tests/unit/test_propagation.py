"""Propagation of a route change (rowcast/propagation.py) on the in-memory store."""

from __future__ import annotations

import pytest

from rowcast.errors import StoreUnavailable
from rowcast.propagation import Propagator
from rowcast.store.memory import MemoryModels


async def test_a_change_bumps_the_generation_even_with_no_time_left_to_wait() -> None:
    """The generation is bumped with the store's own deadline, not the caller's: a change
    written but never bumped would reach the servers only at their next full reload."""
    models = MemoryModels()
    propagator = Propagator(models, None, wait_s=5.0, store_timeout_s=2.0)
    first = await propagator.propagate(budget_s=0.0)
    second = await propagator.propagate(budget_s=-1.0)
    assert (first.generation, second.generation) == (1, 2)
    assert models.calls["bump_generation"] == 2


async def test_without_zookeeper_a_change_is_not_known_to_be_complete() -> None:
    """Watching off (no notifier): nobody can be waited for, so the change is reported with no
    servers and not complete; the servers find it at their next poll."""
    propagation = await Propagator(MemoryModels(), None, wait_s=5.0, store_timeout_s=2.0).propagate(
        budget_s=5.0
    )
    assert propagation.servers == 0
    assert not propagation.complete
    assert propagation.lagging == []


async def test_a_failed_bump_is_an_error_for_the_caller() -> None:
    """When HBase cannot bump the generation the caller is told (UNAVAILABLE), rather than
    being told the change propagated."""
    models = MemoryModels()
    models.fail("bump_generation")
    with pytest.raises(StoreUnavailable):
        await Propagator(models, None, wait_s=5.0, store_timeout_s=2.0).propagate(budget_s=5.0)
