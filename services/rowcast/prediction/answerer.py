"""The one path Predict, PredictBatch and StreamPredict share: bin the inputs, look the answers
up (cache, then the store), record the decisions, answer. Plain records in and out; the servicer
(prediction/servicer.py) turns them into protobuf."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rowcast.core.keys import new_decision_id, prediction_key
from rowcast.core.records import Answer, Decision, FallbackRule, Source
from rowcast.core.signature import RawValue
from rowcast.errors import InvalidArgument, RowNotFound
from rowcast.prediction.lookup import Lookup
from rowcast.prediction.router import VersionRouter
from rowcast.telemetry.logs import bind
from rowcast.telemetry.tracing import annotate_decisions

log = logging.getLogger(__name__)


class DecisionSink(Protocol):
    """Where decisions go once answered (the audit path)."""

    async def record(self, decisions: Sequence[Decision]) -> None: ...


class NoAudit:
    """A sink that records nothing: only for measuring what auditing costs."""

    async def record(self, decisions: Sequence[Decision]) -> None:
        return None


@dataclass(frozen=True)
class Input:
    """One parsed input: raw feature values and subject."""

    features: dict[str, RawValue]
    subject: str


class Answerer:
    """Answers a list of inputs for one model from one version snapshot, all-or-nothing.

    A missing row is served as `missing_row_default` (source FALLBACK) when one is configured,
    else the whole call fails with RowNotFound; the decisions reach the sink before any answer
    is returned, so a decision id reaches the caller only once its record is accepted."""

    def __init__(
        self,
        router: VersionRouter,
        lookup: Lookup,
        audit: DecisionSink,
        store_timeout_s: float,
        missing_row_default: float | None,
    ) -> None:
        self._router = router
        self._lookup = lookup
        self._audit = audit
        self._store_timeout_s = store_timeout_s
        self._missing_row_default = missing_row_default

    async def answer(
        self,
        model: str,
        inputs: Sequence[Input],
        *,
        timeout_s: float,
        where: str = "",
        alias: str = "current",
    ) -> list[Answer]:
        """One answer per input, in order. `where` prefixes the field paths of a bad input
        (`inputs[{i}].`, formatted with its index)."""
        budget = min(timeout_s, self._store_timeout_s)
        active = await self._router.resolve(model, alias, timeout_s=budget)
        binned = []
        for i, item in enumerate(inputs):
            try:
                binned.append(active.signature.bin(item.features))
            except InvalidArgument as exc:
                raise exc.prefixed(where.format(i=i)) from None
        keys = [prediction_key(b.bins, active.salt_buckets) for b in binned]
        found = await self._lookup.get(active.table, keys, model=model, timeout_s=budget)
        now_ms = int(time.time() * 1000)
        decisions: list[Decision] = []
        answers: list[Answer] = []
        for item, bins, key, hit in zip(inputs, binned, keys, found, strict=True):
            rules: list[FallbackRule] = []
            if bins.clamped:
                rules.append(FallbackRule.CLAMPED_TO_EDGE_BIN)
            if hit.row is not None:
                output, version = hit.row.output, hit.row.version
                source = Source.CACHE if hit.cached else Source.HBASE
            elif self._missing_row_default is not None:
                output, version, source = self._missing_row_default, active.version, Source.FALLBACK
                rules.append(FallbackRule.MISSING_ROW_DEFAULT)
            else:
                raise RowNotFound(
                    f"version {active.version} of {model!r} has no row for key {key.hex()} "
                    "(its table is incomplete)"
                )
            decision = Decision.made(
                new_decision_id(now_ms),
                model,
                version,
                item.subject,
                item.features,
                key.hex(),
                output,
                source,
                now_ms,
            )
            decisions.append(decision)
            answers.append(Answer.of(decision, bins.clamped, tuple(rules)))
        note_decisions(model, alias, decisions)
        # A decision id reaches the caller only once the sink has accepted its record.
        await self._audit.record(decisions)
        return answers


def note_decisions(model: str, alias: str, decisions: Sequence[Decision]) -> None:
    """Tell the call's span (when traced) and its log context which decisions it made."""
    annotate_decisions(model, alias, decisions)
    if len(decisions) == 1:
        bind(
            model=model,
            model_version=decisions[0].model_version,
            decision_id=decisions[0].decision_id,
        )
    elif decisions:
        bind(model=model, model_version=decisions[0].model_version, decision_count=len(decisions))
    if log.isEnabledFor(logging.DEBUG):
        log.debug("answered %d inputs of %s (alias %s)", len(decisions), model, alias)
