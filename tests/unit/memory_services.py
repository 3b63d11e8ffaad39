"""The PredictionService and the AuditService in process over in-memory stores: what
test_fuzz_requests.py and test_error_size.py call. The ModelService needs HBase (its registry,
admin and jobs have no in-memory form): tests/integration/test_fuzz.py covers it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from rowcast.audit.servicer import AuditServicer
from rowcast.core.keys import new_decision_id, prediction_key
from rowcast.core.query import DecisionQuery, Index
from rowcast.core.records import (
    Augmentation,
    AugmentationState,
    Decision,
    PredictionRow,
    RecordResult,
    Source,
    VersionCount,
)
from rowcast.core.signature import CategoricalFeature, NumericFeature, Signature
from rowcast.errors import DecisionNotFound
from rowcast.prediction.answerer import Answerer, NoAudit
from rowcast.prediction.lookup import Lookup, VersionCaches
from rowcast.prediction.router import VersionRouter
from rowcast.prediction.servicer import PredictionServicer
from rowcast.server import RunningServer, start_server
from rowcast.store.memory import MemoryModels, MemoryPredictions
from rowcast.store.schema import prediction_table
from rowcast.v1 import audit_service_pb2_grpc as audit_grpc
from rowcast.v1 import prediction_service_pb2_grpc as pred_grpc

MODEL = "credit"
VERSION = 3
#: A model registered with no version active.
IDLE_MODEL = "idle"
SALT_BUCKETS = 2
#: One numeric feature (two bins, below and above 100) and one categorical one.
SIGNATURE = Signature(
    (
        NumericFeature(
            "balance", edges=(100.0,), representatives=(50.0, 150.0), lower=0, upper=200
        ),
        CategoricalFeature("student", vocabulary=("no", "yes")),
    )
)
#: A decision the audit store holds from the start.
DECISION_ID = new_decision_id(1_700_000_000_000)


class MemoryDecisions:
    """A DecisionStore (store/protocols.py) over a dict: decisions by id, written once."""

    def __init__(self) -> None:
        self.rows: dict[str, Decision] = {}
        self._replays: dict[tuple[str, str], Decision] = {}

    async def record(
        self, decisions: Sequence[Decision], *, timeout_s: float, all_or_nothing: bool = False
    ) -> RecordResult:
        conflicts = tuple(
            (i, d.decision_id)
            for i, d in enumerate(decisions)
            if self.rows.get(d.decision_id, d) != d
        )
        if conflicts and all_or_nothing:
            return RecordResult(0, 0, conflicts)
        refused = {i for i, _ in conflicts}
        fresh = [
            d
            for i, d in enumerate(decisions)
            if i not in refused and d.decision_id not in self.rows
        ]
        for d in fresh:
            self.rows[d.decision_id] = d
        return RecordResult(len(fresh), len(decisions) - len(fresh) - len(refused), conflicts)

    async def augment(
        self,
        decision_id: str,
        augmentation: Augmentation,
        *,
        timeout_s: float,
        request_id: str = "",
    ) -> tuple[Decision, bool]:
        decision = await self.get(decision_id, timeout_s=timeout_s)
        if request_id and (decision_id, request_id) in self._replays:
            return self._replays[(decision_id, request_id)], True
        decision = dataclasses.replace(
            decision, augmentations=(*decision.augmentations, augmentation)
        )
        self.rows[decision_id] = decision
        if request_id:
            self._replays[(decision_id, request_id)] = decision
        return decision, False

    async def get(self, decision_id: str, *, timeout_s: float) -> Decision:
        decision = self.rows.get(decision_id)
        if decision is None:
            raise DecisionNotFound("no such decision")
        return decision

    async def list_decisions(
        self, query: DecisionQuery, page_size: int, page_token: str, *, timeout_s: float
    ) -> tuple[list[Decision], str]:
        after = query.after(page_token)
        selected = sorted(
            (d for d in self.rows.values() if _selects(query, d)),
            key=lambda d: d.decision_id,
            reverse=True,
        )
        if after is not None:
            selected = [d for d in selected if bytes.fromhex(d.decision_id) < after]
        page = selected[:page_size]
        more = len(selected) > page_size
        return page, query.page_token(page[-1].decision_id) if more else ""

    async def count(self, model: str, *, timeout_s: float) -> list[VersionCount]:
        versions = sorted({d.model_version for d in self.rows.values() if d.model == model})
        out = []
        for v in reversed(versions):
            served = [d for d in self.rows.values() if d.model == model and d.model_version == v]
            states: dict[AugmentationState, int] = {}
            for d in served:
                if d.augmentations:
                    state = d.augmentations[-1].state
                    states[state] = states.get(state, 0) + 1
            out.append(VersionCount(v, len(served), states))
        return out


def _selects(query: DecisionQuery, d: Decision) -> bool:
    if query.start_ms is not None and d.decide_time_ms < query.start_ms:
        return False
    if query.end_ms is not None and d.decide_time_ms >= query.end_ms:
        return False
    if query.index is Index.SUBJECT:
        return d.subject == query.subject
    if query.index is Index.INPUT_KEY:
        return d.model == query.model and d.key_hex == query.key.hex()
    if query.index is Index.VERSION:
        return d.model == query.model and d.model_version == query.version
    return True


@dataclass(frozen=True)
class Services:
    """Where the two servers listen, and their stores."""

    prediction: str
    audit: str
    decisions: MemoryDecisions


async def _start() -> tuple[list[RunningServer], Services]:
    models = MemoryModels()
    models.add(MODEL, SIGNATURE, salt_buckets=SALT_BUCKETS, aliases={"current": VERSION})
    models.add(IDLE_MODEL, SIGNATURE, salt_buckets=SALT_BUCKETS)
    predictions = MemoryPredictions()
    table = prediction_table(MODEL, VERSION)
    for balance_bin in range(2):
        for student_bin in range(2):
            key = prediction_key((balance_bin, student_bin), SALT_BUCKETS)
            predictions.put(table, key, PredictionRow(0.1 + balance_bin / 2, VERSION))
    decisions = MemoryDecisions()
    await decisions.record(
        [
            Decision(
                decision_id=DECISION_ID,
                model=MODEL,
                model_version=VERSION,
                subject="alice",
                features={"balance": 50.0, "student": "no"},
                key_hex=prediction_key((0, 0), SALT_BUCKETS).hex(),
                output=0.1,
                source=Source.HBASE,
                decide_time_ms=1_700_000_000_000,
            )
        ],
        timeout_s=1.0,
    )
    answerer = Answerer(
        VersionRouter(models, refresh_s=3600.0),
        Lookup(predictions, VersionCaches(100), 2.0),
        NoAudit(),
        2.0,
        None,
    )
    prediction_servicer = PredictionServicer(answerer, 2.0)
    audit_servicer = AuditServicer(decisions, 2.0, models)
    prediction = await start_server(
        lambda s: pred_grpc.add_PredictionServiceServicer_to_server(prediction_servicer, s),
        ["rowcast.v1.PredictionService"],
        "127.0.0.1",
        0,
    )
    audit = await start_server(
        lambda s: audit_grpc.add_AuditServiceServicer_to_server(audit_servicer, s),
        ["rowcast.v1.AuditService"],
        "127.0.0.1",
        0,
    )
    return [prediction, audit], Services(
        f"127.0.0.1:{prediction.port}", f"127.0.0.1:{audit.port}", decisions
    )


@asynccontextmanager
async def running_services() -> AsyncIterator[Services]:
    """Both servers on free ports, in the running event loop."""
    servers, services = await _start()
    try:
        yield services
    finally:
        for server in servers:
            await server.stop(0.1)
