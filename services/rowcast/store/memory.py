"""In-memory stores for tests, shipped in the package as httpx ships `MockTransport`.

`MemoryPredictions` implements `PredictionReader`, `MemoryModels` implements `ModelReader` and
`VersionReader`, and `MemoryDecisions` implements `DecisionStore` (store/protocols.py) over
plain dicts: no HBase, no threads. Each records the calls it receives
so that a test can assert what reached the store, and can be told to fail (StoreUnavailable
by default) or to answer late. A late answer obeys the caller's `timeout_s` as the HBase client
does: past the deadline (less its margin) the call raises StoreUnavailable, not retryable.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence

from rowcast.core.chain import same_record
from rowcast.core.query import DecisionQuery
from rowcast.core.records import (
    Augmentation,
    AugmentationState,
    Decision,
    ModelInfo,
    OutputKind,
    PredictionRow,
    RecordResult,
    VersionCount,
    VersionInfo,
    VersionState,
)
from rowcast.core.signature import Signature
from rowcast.deadlines import within_deadline
from rowcast.errors import (
    DecisionNotFound,
    ModelNotFound,
    RowcastError,
    StoreUnavailable,
    VersionNotFound,
)


class _Faults:
    """A configured failure or delay, applied to each call as the HBase client would."""

    def __init__(self) -> None:
        #: Raised by every call while set.
        self.error: RowcastError | None = None
        #: Seconds each call takes before it answers.
        self.delay_s = 0.0

    async def apply(self, timeout_s: float) -> None:
        if timeout_s <= 0:  # as HBaseClient.run: no time left, nothing is sent
            raise StoreUnavailable("no time left for the HBase call", retryable=False)
        if self.delay_s > 0:
            budget = within_deadline(timeout_s)
            if self.delay_s > budget:
                await asyncio.sleep(budget)
                raise StoreUnavailable(
                    f"HBase did not answer within {budget:.3f}s", retryable=False
                )
            await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error


class MemoryPredictions:
    """Version tables of key -> PredictionRow; records each call's table and keys.

    `calls` holds one (table, keys) entry per call, `get` and `get_many` alike, so a test can
    assert how lookups were coalesced. Reading a table that was never created raises
    StoreUnavailable, as HBase does.
    """

    def __init__(self, tables: Mapping[str, Mapping[bytes, PredictionRow]] | None = None) -> None:
        self.tables: dict[str, dict[bytes, PredictionRow]] = {
            name: dict(rows) for name, rows in (tables or {}).items()
        }
        self.calls: list[tuple[str, tuple[bytes, ...]]] = []
        self._faults = _Faults()

    def put(self, table: str, key: bytes, row: PredictionRow) -> None:
        """Store one row (creating the table)."""
        self.tables.setdefault(table, {})[key] = row

    def create(self, table: str) -> None:
        """Create an empty table."""
        self.tables.setdefault(table, {})

    def fail(self, error: RowcastError | None = None) -> None:
        """Make every call raise `error` (StoreUnavailable when not given)."""
        self._faults.error = error or StoreUnavailable("HBase is down (memory store)")

    def delay(self, seconds: float) -> None:
        """Make every call take `seconds` before it answers."""
        self._faults.delay_s = seconds

    def heal(self) -> None:
        """Answer at once and without failing again."""
        self._faults = _Faults()

    @property
    def keys_fetched(self) -> list[bytes]:
        """Every key asked for, over all calls, in order."""
        return [key for _, keys in self.calls for key in keys]

    async def get(self, table: str, key: bytes, *, timeout_s: float) -> PredictionRow | None:
        self.calls.append((table, (key,)))
        await self._faults.apply(timeout_s)
        return self._table(table).get(key)

    async def get_many(
        self, table: str, keys: Sequence[bytes], *, timeout_s: float
    ) -> dict[bytes, PredictionRow]:
        self.calls.append((table, tuple(keys)))
        await self._faults.apply(timeout_s)
        rows = self._table(table)
        return {key: rows[key] for key in keys if key in rows}

    def _table(self, table: str) -> dict[bytes, PredictionRow]:
        rows = self.tables.get(table)
        if rows is None:
            raise StoreUnavailable(f"HBase unavailable: table {table!r} does not exist")
        return rows


class MemoryModels:
    """Registered models with their aliases and the registry generation; records each call.

    `calls` counts calls by method name (`get_model`, `list_models`, `generation`). As in the
    HBase registry, registering a model does not bump the generation, and every alias change
    made through `set_current`, `set_alias` or `delete_alias` does unless told not to (as a
    bump lost to an outage would be).
    """

    def __init__(self) -> None:
        self._models: dict[str, ModelInfo] = {}
        self._versions: dict[tuple[str, int], VersionInfo] = {}
        self._generation = 0
        self.calls: Counter[str] = Counter()
        self._faults: dict[str, _Faults] = {}
        self._all = _Faults()

    def add(
        self,
        name: str,
        signature: Signature,
        *,
        salt_buckets: int = 4,
        output_kind: OutputKind = OutputKind.PROBABILITY,
        aliases: Mapping[str, int] | None = None,
    ) -> ModelInfo:
        """Register a model (its aliases, `current` and `previous` included, as given)."""
        self._models[name] = _with_aliases(
            ModelInfo(
                name=name,
                description="",
                signature=signature,
                output_kind=output_kind,
                output_description="",
                current_version=0,
                previous_version=0,
                create_time_ms=0,
                salt_buckets=salt_buckets,
            ),
            dict(aliases or {}),
        )
        return self._models[name]

    def add_version(self, name: str, version: int) -> VersionInfo:
        """Record a READY version of a registered model."""
        self._model(name)
        info = VersionInfo(
            model=name,
            version=version,
            state=VersionState.READY,
            table=f"pred_{name}_v{version}",
            row_count=0,
            creator="",
            metrics={},
            create_time_ms=0,
            update_time_ms=0,
        )
        self._versions[(name, version)] = info
        return info

    def set_current(self, name: str, version: int, *, bump: bool = True) -> int:
        """Activate a version: the old current one becomes `previous`; the generation."""
        aliases = dict(self._model(name).aliases)
        current = aliases.get("current", 0)
        if current and current != version:
            aliases["previous"] = current
        aliases["current"] = version
        return self._route_change(name, aliases, bump)

    def set_alias(self, name: str, alias: str, version: int, *, bump: bool = True) -> int:
        """Point an alias at a version; the generation."""
        return self._route_change(name, {**self._model(name).aliases, alias: version}, bump)

    def delete_alias(self, name: str, alias: str, *, bump: bool = True) -> int:
        """Remove an alias; the generation."""
        aliases = dict(self._model(name).aliases)
        del aliases[alias]
        return self._route_change(name, aliases, bump)

    def bump(self) -> int:
        """Bump the registry generation (as every route change does); the new value."""
        self._generation += 1
        return self._generation

    def fail(self, *methods: str, error: RowcastError | None = None) -> None:
        """Make calls raise `error` (StoreUnavailable when not given): calls of the named
        methods only (`fail("list_models")`), or of every method when none is named."""
        error = error or StoreUnavailable("HBase is down (memory store)")
        if not methods:
            self._all.error = error
        for method in methods:
            self._faults.setdefault(method, _Faults()).error = error

    def delay(self, seconds: float) -> None:
        """Make every call take `seconds` before it answers."""
        self._all.delay_s = seconds

    def heal(self) -> None:
        """Answer at once and without failing again."""
        self._faults.clear()
        self._all = _Faults()

    async def get_model(self, name: str, *, timeout_s: float) -> ModelInfo:
        await self._call("get_model", timeout_s)
        return self._model(name)

    async def list_models(self, *, timeout_s: float) -> list[ModelInfo]:
        await self._call("list_models", timeout_s)
        return list(self._models.values())

    async def get_version(self, model: str, version: int, *, timeout_s: float) -> VersionInfo:
        await self._call("get_version", timeout_s)
        self._model(model)
        info = self._versions.get((model, version))
        if info is None:
            raise VersionNotFound(f"model {model!r} has no version {version}")
        return info

    async def generation(self, *, timeout_s: float) -> int:
        await self._call("generation", timeout_s)
        return self._generation

    async def bump_generation(self, *, timeout_s: float) -> int:
        await self._call("bump_generation", timeout_s)
        return self.bump()

    async def _call(self, method: str, timeout_s: float) -> None:
        self.calls[method] += 1
        await self._all.apply(timeout_s)
        faults = self._faults.get(method)
        if faults is not None:
            await faults.apply(timeout_s)

    def _model(self, name: str) -> ModelInfo:
        model = self._models.get(name)
        if model is None:
            raise ModelNotFound(f"model {name!r} is not registered")
        return model

    def _route_change(self, name: str, aliases: dict[str, int], bump: bool) -> int:
        self._models[name] = _with_aliases(self._model(name), aliases)
        return self.bump() if bump else self._generation


def _with_aliases(model: ModelInfo, aliases: dict[str, int]) -> ModelInfo:
    """The model with these aliases; `current_version` and `previous_version` follow them."""
    return dataclasses.replace(
        model,
        aliases=aliases,
        current_version=aliases.get("current", 0),
        previous_version=aliases.get("previous", 0),
    )


class MemoryDecisions:
    """Decisions by id, written once as the HBase audit store writes them (a replay is a
    no-op, a conflict is refused), with their augmentations; can be made to fail.

    `writes` counts the decisions written. Listing ignores page tokens (one page) and time
    ranges' ids: enough for servicer tests, not a model of the indexes.
    """

    def __init__(self) -> None:
        self.rows: dict[str, Decision] = {}
        self.writes = 0
        self._requests: set[tuple[str, str]] = set()
        self._faults = _Faults()

    def fail(self, error: RowcastError | None = None) -> None:
        """Make every call raise `error` (StoreUnavailable when not given)."""
        self._faults.error = error or StoreUnavailable("HBase is down (memory store)")

    def heal(self) -> None:
        self._faults = _Faults()

    async def record(
        self, decisions: Sequence[Decision], *, timeout_s: float, all_or_nothing: bool = False
    ) -> RecordResult:
        await self._faults.apply(timeout_s)
        seen = dict(self.rows)
        new: list[Decision] = []
        replayed = 0
        conflicts: list[tuple[int, str]] = []
        for i, d in enumerate(decisions):
            stored = seen.get(d.decision_id)
            if stored is None:
                seen[d.decision_id] = d
                new.append(d)
            elif same_record(stored, d):
                replayed += 1
            else:
                conflicts.append((i, d.decision_id))
        if conflicts and all_or_nothing:
            return RecordResult(0, 0, tuple(conflicts))
        for d in new:
            self.rows[d.decision_id] = d
        self.writes += len(new)
        return RecordResult(len(new), replayed, tuple(conflicts))

    async def augment(
        self,
        decision_id: str,
        augmentation: Augmentation,
        *,
        timeout_s: float,
        request_id: str = "",
    ) -> tuple[Decision, bool]:
        await self._faults.apply(timeout_s)
        decision = self._row(decision_id)
        if request_id and (decision_id, request_id) in self._requests:
            return decision, True
        if request_id:
            self._requests.add((decision_id, request_id))
        decision = dataclasses.replace(
            decision, augmentations=(*decision.augmentations, augmentation)
        )
        self.rows[decision_id] = decision
        return decision, False

    async def get(self, decision_id: str, *, timeout_s: float) -> Decision:
        await self._faults.apply(timeout_s)
        return self._row(decision_id)

    async def list_decisions(
        self, query: DecisionQuery, page_size: int, page_token: str, *, timeout_s: float
    ) -> tuple[list[Decision], str]:
        await self._faults.apply(timeout_s)
        chosen = [
            d
            for d in self.rows.values()
            if (not query.subject or d.subject == query.subject)
            and (not query.model or d.model == query.model)
            and (not query.version or d.model_version == query.version)
            and (not query.key or d.key_hex == query.key.hex())
        ]
        chosen.sort(key=lambda d: d.decision_id, reverse=True)
        return chosen[:page_size], ""

    async def count(self, model: str, *, timeout_s: float) -> list[VersionCount]:
        await self._faults.apply(timeout_s)
        totals: Counter[int] = Counter()
        states: dict[int, Counter[AugmentationState]] = {}
        for d in self.rows.values():
            if d.model != model:
                continue
            totals[d.model_version] += 1
            if d.augmentations:
                states.setdefault(d.model_version, Counter())[d.augmentations[-1].state] += 1
        return [
            VersionCount(v, totals[v], dict(states.get(v, {})))
            for v in sorted(totals, reverse=True)
        ]

    def _row(self, decision_id: str) -> Decision:
        decision = self.rows.get(decision_id)
        if decision is None:
            raise DecisionNotFound(f"decision {decision_id!r} not found")
        return decision
