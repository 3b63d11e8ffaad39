"""The hot-path read (prediction/lookup.py) on the in-memory store: misses that arrive in the
same loop tick become one multi-get, a key being fetched is not fetched twice, cache hits never
reach the store, and a version's cache is dropped when it stops being active."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rowcast.core.records import PredictionRow
from rowcast.errors import StoreUnavailable
from rowcast.prediction.lookup import MAX_MULTI_GET, Lookup, VersionCaches
from rowcast.store.memory import MemoryPredictions

TABLE = "rowcast:pred_credit_v1"
OTHER = "rowcast:pred_credit_v2"
MODEL = "credit"
STORE_TIMEOUT_S = 2.0


def key(i: int) -> bytes:
    return i.to_bytes(4, "big")


def row(i: int) -> PredictionRow:
    return PredictionRow(output=i / 1000, version=1)


def store_with(n: int, *tables: str) -> MemoryPredictions:
    """Tables (TABLE by default) holding rows for keys 0..n-1."""
    store = MemoryPredictions()
    for table in tables or (TABLE,):
        store.create(table)
        for i in range(n):
            store.put(table, key(i), row(i))
    return store


def lookup_over(store: MemoryPredictions, cache_size: int = 1000) -> tuple[Lookup, VersionCaches]:
    caches = VersionCaches(cache_size)
    return Lookup(store, caches, STORE_TIMEOUT_S), caches


@given(
    wanted=st.lists(st.integers(0, 199), min_size=2, max_size=60, unique=True),
    stored=st.integers(0, 200),
)
async def test_misses_in_one_tick_become_one_multi_get(wanted: list[int], stored: int) -> None:
    """Single-key lookups started in the same loop tick reach the store as one get_many with
    every key, in arrival order; each caller gets its own row, or None when there is none."""
    store = store_with(stored)
    lookup, _ = lookup_over(store)

    found = await asyncio.gather(
        *(lookup.get(TABLE, [key(i)], model=MODEL, timeout_s=1.0) for i in wanted)
    )

    assert store.calls == [(TABLE, tuple(key(i) for i in wanted))]
    for i, (hit,) in zip(wanted, found, strict=True):
        assert hit.row == (row(i) if i < stored else None)
        assert not hit.cached


async def test_one_miss_is_one_point_get() -> None:
    """A lone miss is fetched with one single-key call."""
    store = store_with(3)
    lookup, _ = lookup_over(store)

    (hit,) = await lookup.get(TABLE, [key(2)], model=MODEL, timeout_s=1.0)

    assert hit.row == row(2)
    assert store.calls == [(TABLE, (key(2),))]


async def test_large_batches_are_split_into_multi_gets_of_bounded_size() -> None:
    """One request for more than MAX_MULTI_GET missing keys is fetched in chunks of at most
    MAX_MULTI_GET keys, and every key is answered in order."""
    n = 2 * MAX_MULTI_GET + 76
    store = store_with(n)
    lookup, _ = lookup_over(store)

    found = await lookup.get(TABLE, [key(i) for i in range(n)], model=MODEL, timeout_s=1.0)

    assert [len(keys) for _, keys in store.calls] == [MAX_MULTI_GET, MAX_MULTI_GET, 76]
    assert store.keys_fetched == [key(i) for i in range(n)]
    assert [f.row for f in found] == [row(i) for i in range(n)]


async def test_each_table_gets_its_own_multi_get() -> None:
    """Misses of the same tick for two tables become one call per table."""
    store = store_with(4, TABLE, OTHER)
    lookup, _ = lookup_over(store)

    await asyncio.gather(
        lookup.get(TABLE, [key(0), key(1)], model=MODEL, timeout_s=1.0),
        lookup.get(OTHER, [key(2)], model=MODEL, timeout_s=1.0),
        lookup.get(TABLE, [key(3)], model=MODEL, timeout_s=1.0),
    )

    assert sorted(store.calls) == [(TABLE, (key(0), key(1), key(3))), (OTHER, (key(2),))]


async def test_a_key_is_fetched_once_however_often_it_is_asked_for() -> None:
    """The same key asked for twice in one request, by another request of the same tick, or by
    a request arriving while its fetch is in flight, is fetched once; every caller gets it."""
    store = store_with(2)
    store.delay(0.05)
    lookup, _ = lookup_over(store)

    first = asyncio.create_task(lookup.get(TABLE, [key(1), key(1)], model=MODEL, timeout_s=1.0))
    same_tick = asyncio.create_task(lookup.get(TABLE, [key(1)], model=MODEL, timeout_s=1.0))
    await asyncio.sleep(0.01)  # the fetch is now in flight
    assert store.calls == [(TABLE, (key(1),))]
    in_flight = await lookup.get(TABLE, [key(1)], model=MODEL, timeout_s=1.0)

    assert [f.row for f in await first] == [row(1), row(1)]
    assert [f.row for f in await same_tick] == [row(1)]
    assert [f.row for f in in_flight] == [row(1)]
    assert store.calls == [(TABLE, (key(1),))]


@given(st.lists(st.integers(0, 49), min_size=1, max_size=30))
async def test_cache_hits_do_not_touch_the_store(wanted: list[int]) -> None:
    """Once a row has been fetched, asking for it again is answered from the cache (marked
    cached) without a store call."""
    store = store_with(50)
    lookup, _ = lookup_over(store)
    keys = [key(i) for i in wanted]
    await lookup.get(TABLE, keys, model=MODEL, timeout_s=1.0)
    calls = len(store.calls)

    again = await lookup.get(TABLE, keys, model=MODEL, timeout_s=1.0)

    assert len(store.calls) == calls
    assert all(f.cached for f in again)
    assert [f.row for f in again] == [row(i) for i in wanted]


async def test_a_missing_row_is_asked_for_again() -> None:
    """Only rows that exist are cached: a key without a row goes to the store every time."""
    store = store_with(1)
    lookup, _ = lookup_over(store)

    for _ in range(2):
        (hit,) = await lookup.get(TABLE, [key(7)], model=MODEL, timeout_s=1.0)
        assert hit.row is None

    assert store.calls == [(TABLE, (key(7),)), (TABLE, (key(7),))]


async def test_retain_drops_the_caches_of_tables_no_longer_active() -> None:
    """After retain({v2}), the cache of v1 is empty and v1's rows are fetched again; v2's
    cache is kept."""
    store = store_with(3, TABLE, OTHER)
    lookup, caches = lookup_over(store)
    await lookup.get(TABLE, [key(0), key(1)], model=MODEL, timeout_s=1.0)
    await lookup.get(OTHER, [key(2)], model=MODEL, timeout_s=1.0)
    assert (caches.size(TABLE), caches.size(OTHER)) == (2, 1)

    caches.retain({OTHER})

    assert (caches.size(TABLE), caches.size(OTHER)) == (0, 1)
    calls = len(store.calls)
    (hit,) = await lookup.get(TABLE, [key(0)], model=MODEL, timeout_s=1.0)
    assert not hit.cached
    assert store.calls[calls:] == [(TABLE, (key(0),))]
    (kept,) = await lookup.get(OTHER, [key(2)], model=MODEL, timeout_s=1.0)
    assert kept.cached


async def test_each_version_cache_is_bounded() -> None:
    """A version's cache holds at most `size` rows (least recently used dropped); size 0
    caches nothing."""
    store = store_with(10)
    lookup, caches = lookup_over(store, cache_size=3)
    await lookup.get(TABLE, [key(i) for i in range(10)], model=MODEL, timeout_s=1.0)
    assert caches.size(TABLE) == 3

    uncached, none = lookup_over(store, cache_size=0)
    await uncached.get(TABLE, [key(1)], model=MODEL, timeout_s=1.0)
    assert none.size(TABLE) == 0


async def test_a_store_failure_reaches_every_waiter_and_is_not_remembered() -> None:
    """When the store fails, every caller waiting for that fetch gets StoreUnavailable; the
    next request fetches again and succeeds once the store is back."""
    store = store_with(2)
    lookup, _ = lookup_over(store)
    store.fail()

    results = await asyncio.gather(
        lookup.get(TABLE, [key(0)], model=MODEL, timeout_s=1.0),
        lookup.get(TABLE, [key(1)], model=MODEL, timeout_s=1.0),
        return_exceptions=True,
    )
    assert all(isinstance(r, StoreUnavailable) for r in results)

    store.heal()
    found = await lookup.get(TABLE, [key(0), key(1)], model=MODEL, timeout_s=1.0)
    assert [f.row for f in found] == [row(0), row(1)]


async def test_a_caller_past_its_deadline_gets_a_non_retryable_store_unavailable() -> None:
    """A caller whose deadline passes before the store answers gets StoreUnavailable, marked
    not retryable; the fetch goes on (it has the store's own timeout) and fills the cache."""
    store = store_with(1)
    store.delay(0.2)
    lookup, caches = lookup_over(store)

    with pytest.raises(StoreUnavailable) as raised:
        await lookup.get(TABLE, [key(0)], model=MODEL, timeout_s=0.05)
    assert not raised.value.retryable

    await asyncio.sleep(0.3)
    assert caches.size(TABLE) == 1
    (hit,) = await lookup.get(TABLE, [key(0)], model=MODEL, timeout_s=0.05)
    assert hit.cached
