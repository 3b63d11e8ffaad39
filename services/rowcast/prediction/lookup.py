"""The hot-path read: answers from a per-version cache, misses coalesced into store multi-gets.

A version table is immutable once READY, so a cached answer never goes stale while its version
is active; the cache is dropped when the version stops being active (a switch, not a timer).
Misses that arrive in the same event-loop tick for the same table become one `get_many` call
(one `rows()` in HBase), and a key already being fetched is not fetched twice (single flight).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cachetools import LRUCache

from rowcast.core.records import PredictionRow
from rowcast.deadlines import within_deadline
from rowcast.errors import StoreUnavailable
from rowcast.store.protocols import PredictionReader
from rowcast.telemetry.domain import CACHE_HITS, CACHE_MISSES

#: Largest multi-get sent to the store in one call.
MAX_MULTI_GET = 512


@dataclass(frozen=True)
class Found:
    """The answer for one key and whether it came from the cache (None: no such row)."""

    row: PredictionRow | None
    cached: bool


class TableCache:
    """One version table's answers, and its model's hit and miss counters (resolved once)."""

    __slots__ = ("hits", "misses", "rows")

    def __init__(self, size: int, model: str) -> None:
        self.rows: LRUCache[bytes, PredictionRow] = LRUCache(maxsize=max(size, 1))
        self.hits = CACHE_HITS.labels(model)
        self.misses = CACHE_MISSES.labels(model)


class VersionCaches:
    """One bounded LRU of answers per active version table."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._caches: dict[str, TableCache] = {}

    def table(self, table: str, model: str) -> TableCache:
        """The cache of a table of `model`, created on first use."""
        cache = self._caches.get(table)
        if cache is None:
            cache = self._caches[table] = TableCache(self._size, model)
        return cache

    def put(self, table: str, key: bytes, row: PredictionRow) -> None:
        """Keep an answer, unless caching is off or the table stopped being active meanwhile."""
        if self._size <= 0:
            return
        cache = self._caches.get(table)
        if cache is not None:
            cache.rows[key] = row

    def retain(self, tables: Iterable[str]) -> None:
        """Drop the caches of tables that are no longer active."""
        keep = set(tables)
        for table in list(self._caches):
            if table not in keep:
                del self._caches[table]

    def size(self, table: str) -> int:
        cache = self._caches.get(table)
        return 0 if cache is None else len(cache.rows)


class Lookup:
    """Cache first, then batched store multi-gets for the misses, within the caller's deadline.

    A fetch is shared by every caller waiting for its keys, so it runs with `store_timeout_s`;
    each caller stops waiting at its own deadline."""

    def __init__(
        self, store: PredictionReader, caches: VersionCaches, store_timeout_s: float
    ) -> None:
        self._store = store
        self._caches = caches
        self._store_timeout_s = store_timeout_s
        self._pending: dict[str, dict[bytes, asyncio.Future[PredictionRow | None]]] = {}
        self._in_flight: dict[str, dict[bytes, asyncio.Future[PredictionRow | None]]] = {}

    async def get(
        self, table: str, keys: Sequence[bytes], *, model: str, timeout_s: float
    ) -> list[Found]:
        """One answer per key, in order, from `table` (a version table of `model`);
        StoreUnavailable when the store fails or does not answer within timeout_s."""
        cache = self._caches.table(table, model)
        rows = cache.rows
        if len(keys) == 1:  # a single Predict answered from the cache: the hot path
            row = rows.get(keys[0])
            if row is not None:
                cache.hits.inc()
                return [Found(row, cached=True)]
        found: list[Found | None] = []
        waiting: dict[int, asyncio.Future[PredictionRow | None]] = {}
        for i, key in enumerate(keys):
            row = rows.get(key)
            if row is not None:
                found.append(Found(row, cached=True))
                continue
            found.append(None)
            waiting[i] = self._future_for(table, key)
        # Counted once per call, not per key: the hot path pays two increments at most.
        if len(waiting) < len(keys):
            cache.hits.inc(len(keys) - len(waiting))
        if waiting:
            cache.misses.inc(len(waiting))
            futures = set(waiting.values())
            budget = within_deadline(timeout_s)
            done, _ = await asyncio.wait(futures, timeout=budget)
            if len(done) < len(futures):
                raise StoreUnavailable(
                    f"HBase did not answer within {budget:.3f}s", retryable=False
                )
            for i, future in waiting.items():
                found[i] = Found(future.result(), cached=False)
        return [f for f in found if f is not None]

    def _future_for(self, table: str, key: bytes) -> asyncio.Future[PredictionRow | None]:
        for registry in (self._in_flight, self._pending):
            existing = registry.get(table, {}).get(key)
            if existing is not None:
                return existing
        pending = self._pending.get(table)
        if pending is None:
            pending = self._pending[table] = {}
            asyncio.get_running_loop().call_soon(self._flush, table)
        future: asyncio.Future[PredictionRow | None] = asyncio.get_running_loop().create_future()
        pending[key] = future
        return future

    def _flush(self, table: str) -> None:
        batch = self._pending.pop(table, {})
        items = list(batch.items())
        for start in range(0, len(items), MAX_MULTI_GET):
            chunk = dict(items[start : start + MAX_MULTI_GET])
            self._in_flight.setdefault(table, {}).update(chunk)
            asyncio.get_running_loop().create_task(self._fetch(table, chunk))

    async def _fetch(
        self, table: str, chunk: dict[bytes, asyncio.Future[PredictionRow | None]]
    ) -> None:
        try:
            keys = list(chunk)
            if len(keys) == 1:
                row = await self._store.get(table, keys[0], timeout_s=self._store_timeout_s)
                rows = {keys[0]: row} if row is not None else {}
            else:
                rows = await self._store.get_many(table, keys, timeout_s=self._store_timeout_s)
        except Exception as exc:
            for future in chunk.values():
                if not future.done():
                    future.set_exception(exc)
                    # A waiter that gave up never reads it: mark it read (no log noise).
                    future.exception()
        else:
            for key, future in chunk.items():
                row = rows.get(key)
                if row is not None:
                    self._caches.put(table, key, row)
                if not future.done():
                    future.set_result(row)
        finally:
            in_flight = self._in_flight.get(table, {})
            for key in chunk:
                in_flight.pop(key, None)
            if not in_flight:
                self._in_flight.pop(table, None)
