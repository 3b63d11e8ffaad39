"""Which version of each model a prediction server answers with, kept current without restarts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rowcast.aio import wait_event
from rowcast.core.records import ModelInfo
from rowcast.core.signature import Signature
from rowcast.errors import NoActiveVersion, NotFound, RowcastError
from rowcast.store.protocols import ModelReader
from rowcast.store.schema import prediction_table
from rowcast.telemetry.domain import ROUTES_GENERATION, SERVED_VERSION, expose

log = logging.getLogger(__name__)

#: However quiet the generation counter, reload everything this often: a switch whose
#: generation bump was lost (HBase went down between the alias write and the bump) still
#: reaches every server.
FULL_RELOAD_S = 30.0
#: Re-report the routes generation this often even when it did not change (re-creates a
#: presence znode lost with an expired ZooKeeper session).
REPORT_EVERY_S = 5.0


@dataclass(frozen=True)
class ActiveModel:
    """Everything the hot path needs to answer for one model, read once per activation."""

    name: str
    signature: Signature
    version: int
    table: str
    salt_buckets: int


def _versions(model: ModelInfo) -> dict[str, ActiveModel]:
    """The servable snapshot of every alias of a model."""
    return {
        alias: ActiveModel(
            name=model.name,
            signature=model.signature,
            version=version,
            table=prediction_table(model.name, version),
            salt_buckets=model.salt_buckets,
        )
        for alias, version in model.aliases.items()
    }


class VersionRouter:
    """Maps model names to their active version; follows activations by watching the registry.

    The registry keeps a generation counter that every activation bumps. The router checks that
    one cell when `wake()` is called (a ZooKeeper watch fired: store/notify.py) and at the
    latest every `refresh_s` (default 0.25 s), and reloads the aliases when it moved, so a
    switch reaches the hot path at once, and within a poll interval even without the watch;
    however quiet the counter, it reloads every `full_reload_s` (FULL_RELOAD_S). The hot path
    itself never reads the registry, except once for a model registered after the last reload.
    While the registry cannot be read the router keeps the routes it has. Each Predict takes
    one ActiveModel snapshot, so a request never mixes versions. After each reload it reports
    the generation it reached (`report_to`): the process that made the change waits for that
    acknowledgement.
    """

    def __init__(
        self,
        registry: ModelReader,
        refresh_s: float,
        on_change: Callable[[set[str]], None] | None = None,
        *,
        full_reload_s: float = FULL_RELOAD_S,
    ) -> None:
        self._registry = registry
        self._refresh_s = refresh_s
        self._full_reload_s = full_reload_s
        #: Told the set of active tables after every reload (to drop caches of old versions).
        self._on_change = on_change
        #: Model name -> alias -> snapshot; a model with no alias maps to {}.
        self._models: dict[str, dict[str, ActiveModel]] = {}
        self._generation: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._report: Callable[[int], Awaitable[None]] | None = None
        self._reloaded_at = 0.0
        self._reported_at = 0.0
        #: The (model, alias) series of rowcast_served_version this router has set.
        self._served: set[tuple[str, str]] = set()
        expose(ROUTES_GENERATION)

    @property
    def generation(self) -> int | None:
        """The registry generation the routes were last loaded at (None: never loaded)."""
        return self._generation

    async def report_to(self, report: Callable[[int], Awaitable[None]]) -> None:
        """From now on, tell `report` the generation after every reload (and now)."""
        self._report = report
        await self._report_generation()

    async def _report_generation(self) -> None:
        if self._report is not None and self._generation is not None:
            self._reported_at = time.monotonic()
            await self._report(self._generation)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        with contextlib.suppress(RowcastError):
            await self._reload()
        self._task = asyncio.create_task(self._watch(), name="version-router")

    def wake(self) -> None:
        """Check the registry now, not at the next poll (callable from any thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def resolve(self, model: str, alias: str = "current", *, timeout_s: float) -> ActiveModel:
        """The version an alias names (`current` by default); NOT_FOUND for an unknown model or
        alias, FAILED_PRECONDITION when no version is active yet."""
        versions = self._models.get(model)
        if versions is None:  # a model registered after the last reload: look it up once
            versions = _versions(await self._registry.get_model(model, timeout_s=timeout_s))
            self._models[model] = versions
            self._publish()
        active = versions.get(alias)
        if active is None:
            if alias == "current":
                raise NoActiveVersion(f"model {model!r} has no active version; activate one first")
            raise NotFound(f"model {model!r} has no alias {alias!r}")
        return active

    async def _reload(self) -> None:
        generation = await self._registry.generation(timeout_s=self._refresh_s * 4)
        models = await self._registry.list_models(timeout_s=max(self._refresh_s * 8, 2.0))
        fresh = {m.name: _versions(m) for m in models}
        for name, versions in fresh.items():
            new, old = versions.get("current"), self._models.get(name, {}).get("current")
            if new and (old is None or old.version != new.version):
                log.info("model %s now answers with version %d", name, new.version)
        self._models = fresh
        self._generation = generation
        self._reloaded_at = time.monotonic()
        self._publish()
        ROUTES_GENERATION.set(generation)
        if self._on_change is not None:
            self._on_change({a.table for v in fresh.values() for a in v.values()})
        # Only now, with the new routes in place, may the change be acknowledged.
        await self._report_generation()

    def _publish(self) -> None:
        """Set rowcast_served_version for every alias served, and drop the series of aliases
        (and models) that are gone."""
        served = {
            (name, alias): active.version
            for name, versions in self._models.items()
            for alias, active in versions.items()
        }
        for gone in self._served - served.keys():
            SERVED_VERSION.remove(*gone)
        for (name, alias), version in served.items():
            SERVED_VERSION.labels(name, alias).set(version)
        self._served = set(served)

    async def _watch(self) -> None:
        while True:
            await wait_event(self._wake, self._refresh_s)
            self._wake.clear()
            try:
                generation = await self._registry.generation(timeout_s=self._refresh_s * 4)
                now = time.monotonic()
                if generation != self._generation or now - self._reloaded_at >= self._full_reload_s:
                    await self._reload()
                elif now - self._reported_at >= REPORT_EVERY_S:
                    await self._report_generation()
            except RowcastError as exc:
                # The store is down: keep answering with what we know; retry next tick.
                log.debug("registry check failed: %s", exc)
