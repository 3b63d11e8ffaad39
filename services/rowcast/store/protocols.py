"""What the hot path and the servicers need from the store: a handful of async methods each.

The HBase classes implement these (store/predictions.py, store/models.py, store/audit.py), and
so do the in-memory ones in store/memory.py that the unit tests run on. Callers annotate with
these protocols, so nothing above the store layer depends on HBase. Every method takes the
caller's remaining time as the required keyword `timeout_s`; an outage or a timeout is
`StoreUnavailable`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from rowcast.core.query import DecisionQuery
from rowcast.core.records import (
    Augmentation,
    Decision,
    ModelInfo,
    PredictionRow,
    RecordResult,
    VersionCount,
    VersionInfo,
)


class PredictionReader(Protocol):
    """Reads a version's prediction table: what the hot path (prediction/lookup.py) needs."""

    async def get(self, table: str, key: bytes, *, timeout_s: float) -> PredictionRow | None:
        """The row of one key (None: no such row)."""
        ...

    async def get_many(
        self, table: str, keys: Sequence[bytes], *, timeout_s: float
    ) -> dict[bytes, PredictionRow]:
        """Rows by key; absent keys are absent from the result (never assume alignment)."""
        ...


class ModelReader(Protocol):
    """Reads the registered models and the registry generation: what the router needs."""

    async def get_model(self, name: str, *, timeout_s: float) -> ModelInfo:
        """One model with its aliases; ModelNotFound when it is not registered."""
        ...

    async def list_models(self, *, timeout_s: float) -> list[ModelInfo]:
        """Every registered model with its aliases."""
        ...

    async def generation(self, *, timeout_s: float) -> int:
        """A number that changes on every route change (cheap to poll)."""
        ...


class VersionReader(Protocol):
    """Reads one model version: what the AuditService checks recorded decisions against."""

    async def get_version(self, model: str, version: int, *, timeout_s: float) -> VersionInfo:
        """One version; ModelNotFound or VersionNotFound when there is none."""
        ...


class GenerationCounter(Protocol):
    """The registry generation that every route change bumps: what propagation needs."""

    async def bump_generation(self, *, timeout_s: float) -> int:
        """Bump the generation; the new value."""
        ...


class DecisionWriter(Protocol):
    """Stores decisions and their augmentations (the AuditService's writes)."""

    async def record(
        self, decisions: Sequence[Decision], *, timeout_s: float, all_or_nothing: bool = False
    ) -> RecordResult:
        """Store each decision once: a replay (same id, same content) is a no-op, a conflict
        (same id, other content) is refused and never applied; with `all_or_nothing` one
        conflict refuses the whole batch."""
        ...

    async def augment(
        self,
        decision_id: str,
        augmentation: Augmentation,
        *,
        timeout_s: float,
        request_id: str = "",
    ) -> tuple[Decision, bool]:
        """Record an augmentation; (the decision as stored, replayed under request_id)."""
        ...


class DecisionReader(Protocol):
    """Reads stored decisions back (the AuditService's reads)."""

    async def get(self, decision_id: str, *, timeout_s: float) -> Decision:
        """One decision; DecisionNotFound when there is none with that id."""
        ...

    async def list_decisions(
        self, query: DecisionQuery, page_size: int, page_token: str, *, timeout_s: float
    ) -> tuple[list[Decision], str]:
        """One page of the selected decisions, newest first, and the next page's token."""
        ...

    async def count(self, model: str, *, timeout_s: float) -> list[VersionCount]:
        """Decisions of a model per version (newest first) and per augmentation state."""
        ...


class DecisionStore(DecisionWriter, DecisionReader, Protocol):
    """Everything the AuditService does with stored decisions."""
