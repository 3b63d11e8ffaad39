"""The version router (prediction/router.py) on the in-memory registry: it follows generation
bumps and `wake()`, looks a newly registered model up once, keeps its routes while the registry
cannot be read, and reloads everything every `full_reload_s` however quiet the generation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from rowcast.core.signature import NumericFeature, Signature
from rowcast.errors import ModelNotFound, NoActiveVersion, NotFound, StoreUnavailable
from rowcast.prediction.router import VersionRouter
from rowcast.store.memory import MemoryModels
from rowcast.store.schema import prediction_table

SIGNATURE = Signature(
    (NumericFeature("x", edges=(0.0,), representatives=(-1.0, 1.0), lower=-5.0, upper=5.0),)
)
#: A poll interval so long that only `wake()` (or start) can cause a reload during a test.
NEVER_S = 3600.0


def registry(**models: int) -> MemoryModels:
    """Models whose `current` alias names the given version."""
    store = MemoryModels()
    for name, version in models.items():
        store.add(name, SIGNATURE, aliases={"current": version})
    return store


@asynccontextmanager
async def running(router: VersionRouter) -> AsyncIterator[VersionRouter]:
    await router.start()
    try:
        yield router
    finally:
        await router.stop()


async def eventually(condition: Callable[[], bool], within_s: float = 2.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def current(router: VersionRouter, model: str = "credit") -> int:
    return (await router.resolve(model, timeout_s=1.0)).version


async def test_start_loads_every_route_and_resolve_reads_no_store() -> None:
    """After start, resolving a known model answers from the loaded routes, with its table and
    salt buckets, without a registry call."""
    store = registry(credit=2)
    async with running(VersionRouter(store, NEVER_S)) as router:
        active = await router.resolve("credit", timeout_s=1.0)

    assert (active.version, active.table, active.salt_buckets) == (
        2,
        prediction_table("credit", 2),
        4,
    )
    assert store.calls["get_model"] == 0
    assert router.generation == 0


async def test_a_generation_bump_reloads_within_a_poll() -> None:
    """A switch that bumps the generation reaches the routes within a poll interval, without a
    wake-up."""
    store = registry(credit=1)
    async with running(VersionRouter(store, 0.01)) as router:
        generation = store.set_current("credit", 2)
        await eventually(lambda: router.generation == generation)
        assert await current(router) == 2


async def test_wake_reloads_at_once_from_any_thread() -> None:
    """With no poll due, a bump is not seen until `wake()` is called (here from another thread,
    as the ZooKeeper watch does); then the routes reload at once."""
    store = registry(credit=1)
    async with running(VersionRouter(store, NEVER_S)) as router:
        generation = store.set_current("credit", 2)
        await asyncio.sleep(0.05)
        assert await current(router) == 1

        await asyncio.to_thread(router.wake)

        await eventually(lambda: router.generation == generation)
        assert await current(router) == 2


async def test_an_unchanged_generation_does_not_reload() -> None:
    """Polls that find the generation unchanged read only the generation cell."""
    store = registry(credit=1)
    async with running(VersionRouter(store, 0.01)):
        await eventually(lambda: store.calls["generation"] >= 5)
    assert store.calls["list_models"] == 1


async def test_a_model_registered_after_the_last_reload_is_looked_up_once() -> None:
    """A model the routes do not know yet is read from the registry on first use, then served
    from the routes."""
    store = registry(credit=1)
    async with running(VersionRouter(store, NEVER_S)) as router:
        store.add("fraud", SIGNATURE, aliases={"current": 3})
        assert await current(router, "fraud") == 3
        assert await current(router, "fraud") == 3
    assert store.calls["get_model"] == 1


async def test_unknown_models_and_aliases() -> None:
    """An unregistered model is ModelNotFound, an unknown alias NotFound, and a model with no
    `current` alias NoActiveVersion; another alias resolves to the version it names."""
    store = registry(credit=1)
    store.add("fresh", SIGNATURE)
    store.set_alias("credit", "shadow", 5)
    async with running(VersionRouter(store, NEVER_S)) as router:
        with pytest.raises(ModelNotFound):
            await router.resolve("nosuch", timeout_s=1.0)
        with pytest.raises(NotFound, match="no alias 'canary'"):
            await router.resolve("credit", "canary", timeout_s=1.0)
        with pytest.raises(NoActiveVersion):
            await router.resolve("fresh", timeout_s=1.0)
        assert (await router.resolve("credit", "shadow", timeout_s=1.0)).version == 5


async def test_a_registry_outage_keeps_the_old_routes() -> None:
    """While the registry cannot be read, known models keep answering with the routes already
    loaded; once it is back, the change made meanwhile is picked up."""
    store = registry(credit=1)
    async with running(VersionRouter(store, 0.01)) as router:
        store.fail()
        generation = store.set_current("credit", 2)
        polls = store.calls["generation"]
        await eventually(lambda: store.calls["generation"] >= polls + 5)
        assert await current(router) == 1
        assert router.generation == 0

        store.heal()

        await eventually(lambda: router.generation == generation)
        assert await current(router) == 2


async def test_a_failed_reload_is_retried_and_the_generation_not_advanced() -> None:
    """When the generation reads but the models do not, the routes and the generation stay as
    they were (so the change is not acknowledged), and the next poll tries again."""
    store = registry(credit=1)
    async with running(VersionRouter(store, 0.01)) as router:
        store.fail("list_models")
        store.set_current("credit", 2)
        await eventually(lambda: store.calls["list_models"] >= 4)
        assert router.generation == 0
        assert await current(router) == 1

        store.heal()

        await eventually(lambda: router.generation == 1)
        assert await current(router) == 2


async def test_a_router_started_during_an_outage_serves_once_the_registry_is_back() -> None:
    """Start does not fail while the registry is down; resolving then fails with
    StoreUnavailable, and the routes load as soon as the registry answers."""
    store = registry(credit=1)
    store.fail()
    async with running(VersionRouter(store, 0.01)) as router:
        assert router.generation is None
        with pytest.raises(StoreUnavailable):
            await router.resolve("credit", timeout_s=1.0)

        store.heal()

        await eventually(lambda: router.generation == 0)
        assert await current(router) == 1


async def test_a_lost_bump_is_picked_up_by_the_periodic_full_reload() -> None:
    """A switch whose generation bump was lost is not seen by the polls, but reaches the
    routes at the next full reload (every `full_reload_s`, FULL_RELOAD_S by default)."""
    store = registry(credit=1)
    async with running(VersionRouter(store, 0.01, full_reload_s=0.5)) as router:
        started = time.monotonic()
        store.set_current("credit", 2, bump=False)
        await asyncio.sleep(0.1)
        assert await current(router) == 1

        await eventually(lambda: store.calls["list_models"] >= 2)

        assert time.monotonic() - started >= 0.4
        assert await current(router) == 2
        assert router.generation == 0


async def test_every_reload_tells_the_active_tables_and_reports_its_generation() -> None:
    """After each reload, `on_change` receives the table of every alias of every model, and
    the generation reached is reported (only then may a switch be acknowledged)."""
    store = registry(credit=1)
    store.set_alias("credit", "shadow", 3)
    tables: list[set[str]] = []
    reported: list[int] = []

    async def report(generation: int) -> None:
        reported.append(generation)

    async with running(VersionRouter(store, NEVER_S, on_change=tables.append)) as router:
        await router.report_to(report)
        generation = store.set_current("credit", 2)
        router.wake()
        await eventually(lambda: generation in reported)

    assert tables[0] == {prediction_table("credit", 1), prediction_table("credit", 3)}
    assert tables[-1] == {
        prediction_table("credit", 2),
        prediction_table("credit", 1),
        prediction_table("credit", 3),
    }
    assert reported == [1, 2]
