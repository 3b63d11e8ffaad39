"""Which version of each model a prediction server answers with, kept current without restarts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from rowcast.core.records import ModelInfo
from rowcast.core.signature import Signature
from rowcast.errors import NoActiveVersion, RowcastError
from rowcast.store.registry import RegistryStore
from rowcast.store.schema import prediction_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActiveModel:
    """Everything the hot path needs to answer for one model, read once per activation."""

    name: str
    signature: Signature
    version: int
    table: str
    salt_buckets: int


def _active(model: ModelInfo) -> ActiveModel | None:
    if not model.current_version:
        return None
    return ActiveModel(
        name=model.name,
        signature=model.signature,
        version=model.current_version,
        table=prediction_table(model.name, model.current_version),
        salt_buckets=model.salt_buckets,
    )


class VersionRouter:
    """Maps model names to their active version; follows activations by watching the registry.

    The registry keeps a generation counter that every activation bumps. The router reads that
    one cell every `refresh_s` (default 0.25 s) and reloads the aliases when it moves, so a
    switch reaches the hot path within well under a second and the hot path itself never reads
    the registry. Each Predict takes one ActiveModel snapshot, so a request never mixes versions.
    """

    def __init__(
        self,
        registry: RegistryStore,
        refresh_s: float,
        on_change: Callable[[set[str]], None] | None = None,
    ) -> None:
        self._registry = registry
        self._refresh_s = refresh_s
        #: Told the set of active tables after every reload (to drop caches of old versions).
        self._on_change = on_change
        self._models: dict[str, ActiveModel | None] = {}
        self._generation: int | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        with contextlib.suppress(RowcastError):
            await self._reload()
        self._task = asyncio.create_task(self._watch(), name="version-router")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def resolve(self, model: str, timeout_s: float | None) -> ActiveModel:
        """The active version of a model; NOT_FOUND / FAILED_PRECONDITION when there is none."""
        if model in self._models:
            active = self._models[model]
        else:  # a model registered after the last reload: look it up once
            active = _active(await self._registry.get_model(model, timeout_s=timeout_s))
            self._models[model] = active
        if active is None:
            raise NoActiveVersion(f"model {model!r} has no active version; activate one first")
        return active

    async def _reload(self) -> None:
        generation = await self._registry.generation(timeout_s=self._refresh_s * 4)
        models = await self._registry.list_models(timeout_s=max(self._refresh_s * 8, 2.0))
        fresh = {m.name: _active(m) for m in models}
        for name, active in fresh.items():
            old = self._models.get(name)
            if active and (old is None or old.version != active.version):
                log.info("model %s now answers with version %d", name, active.version)
        self._models = fresh
        self._generation = generation
        if self._on_change is not None:
            self._on_change({a.table for a in fresh.values() if a is not None})

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                generation = await self._registry.generation(timeout_s=self._refresh_s * 4)
                if generation != self._generation:
                    await self._reload()
            except RowcastError as exc:
                # The store is down: keep answering with what we know; retry next tick.
                log.debug("registry check failed: %s", exc)
