"""AuditService: stores decisions, serves them back, and records augmentations."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator

import grpc

from rowcast.convert import (
    AUG_SOURCE_FROM_PB,
    AUG_STATE_FROM_PB,
    decision_from_pb,
    decision_to_pb,
)
from rowcast.core.keys import decision_id_bytes, new_decision_id
from rowcast.core.query import DecisionQuery
from rowcast.core.records import (
    Augmentation,
    AugmentationSource,
    AugmentationState,
    Decision,
    OutputKind,
    VersionCount,
    check_model_name,
)
from rowcast.deadlines import remaining_s
from rowcast.errors import FieldViolation, InvalidArgument, RowcastError
from rowcast.grpc_errors import abort, handles_errors
from rowcast.paging import page_size
from rowcast.store.protocols import DecisionStore, ModelReader
from rowcast.telemetry.domain import DECISIONS_RECORDED, DECISIONS_REFUSED, expose
from rowcast.telemetry.logs import bind
from rowcast.telemetry.tracing import audit_write_spans
from rowcast.v1 import audit_service_pb2 as audit_pb
from rowcast.v1 import audit_service_pb2_grpc as audit_grpc
from rowcast.v1 import resources_pb2 as pb

Context = grpc.aio.ServicerContext[object, object]

MAX_RECORD_BATCH = 5000
MAX_TEXT_CHARS = 1000
MAX_REQUEST_ID_CHARS = 128


def augmentation_from_pb(a: pb.Augmentation) -> Augmentation:
    """Validate an augmentation request; every bad field is reported at once."""
    violations: list[FieldViolation] = []
    if not math.isfinite(a.better_output):
        violations.append(FieldViolation("augmentation.better_output", "must be a finite number"))
    source = AUG_SOURCE_FROM_PB.get(a.source)
    if not isinstance(source, AugmentationSource):
        violations.append(FieldViolation("augmentation.source", "is required (PERSON or PROGRAM)"))
    if not a.actor.strip():
        violations.append(FieldViolation("augmentation.actor", "is required"))
    elif len(a.actor) > MAX_TEXT_CHARS:
        violations.append(FieldViolation("augmentation.actor", f"at most {MAX_TEXT_CHARS} chars"))
    if len(a.reason) > MAX_TEXT_CHARS:
        violations.append(FieldViolation("augmentation.reason", f"at most {MAX_TEXT_CHARS} chars"))
    state = (
        AugmentationState.PROPOSED
        if a.state == pb.AUGMENTATION_STATE_UNSPECIFIED
        else AUG_STATE_FROM_PB.get(a.state)
    )
    if not isinstance(state, AugmentationState):
        violations.append(FieldViolation("augmentation.state", f"unknown state {a.state}"))
    if violations:
        raise InvalidArgument(
            "bad augmentation: " + "; ".join(f"{v.field} {v.description}" for v in violations),
            violations,
        )
    assert isinstance(source, AugmentationSource) and isinstance(state, AugmentationState)
    return Augmentation(
        augmentation_id=new_decision_id(),
        better_output=a.better_output,
        source=source,
        actor=a.actor.strip(),
        reason=a.reason,
        state=state,
        create_time_ms=int(time.time() * 1000),
    )


def checked_decision(d: pb.Decision, index: int) -> Decision:
    """A decision sent by a prediction server, with the fields its row keys are built from
    validated (a malformed one must be refused, never written half-indexed)."""
    decision = decision_from_pb(d, index)
    try:
        decision_id_bytes(decision.decision_id)
    except ValueError as exc:
        raise InvalidArgument.field(f"decisions[{index}].decision_id", str(exc)) from exc
    check_model_name(decision.model, f"decisions[{index}].model")
    if decision.key_hex:
        try:
            bytes.fromhex(decision.key_hex)
        except ValueError as exc:
            raise InvalidArgument.field(f"decisions[{index}].key", "is not hex") from exc
    return decision


def refusal_reason(error: InvalidArgument) -> str:
    """The `reason` label of a refused decision: the field that failed, without its index
    (`invalid_decision_id` for `decisions[3].decision_id`), so that the label stays bounded."""
    path = error.violations[0].field if error.violations else ""
    field = path.split("].", 1)[-1].split(".", 1)[0].split("[", 1)[0]
    return f"invalid_{field}" if field else "invalid"


def check_better_output(value: float, kind: OutputKind) -> None:
    """A better output must be of the kind the model outputs (a probability is in [0, 1])."""
    if kind is OutputKind.PROBABILITY and not 0.0 <= value <= 1.0:
        raise InvalidArgument.field(
            "augmentation.better_output", f"must be a probability in [0, 1], got {value}"
        )


def count_to_pb(c: VersionCount) -> audit_pb.DecisionCount:
    return audit_pb.DecisionCount(
        model_version=c.version,
        decision_count=c.decisions,
        unaugmented_count=c.unaugmented,
        proposed_count=c.by_state.get(AugmentationState.PROPOSED, 0),
        approved_count=c.by_state.get(AugmentationState.APPROVED, 0),
        rejected_count=c.by_state.get(AugmentationState.REJECTED, 0),
    )


class AuditServicer(audit_grpc.AuditServiceServicer):
    """Maps AuditService calls onto the audit store (and the registry, for output kinds)."""

    def __init__(
        self, store: DecisionStore, store_timeout_s: float, registry: ModelReader | None = None
    ) -> None:
        self._store = store
        self._timeout_s = store_timeout_s
        self._registry = registry
        expose(DECISIONS_RECORDED)

    @handles_errors
    async def RecordDecisions(
        self, request: audit_pb.RecordDecisionsRequest, context: Context
    ) -> audit_pb.RecordDecisionsResponse:
        if len(request.decisions) > MAX_RECORD_BATCH:
            DECISIONS_REFUSED.labels("too_many").inc(len(request.decisions))
            raise InvalidArgument.field(
                "decisions", f"at most {MAX_RECORD_BATCH} per call, got {len(request.decisions)}"
            )
        try:
            decisions = [checked_decision(d, i) for i, d in enumerate(request.decisions)]
        except InvalidArgument as exc:
            # All or nothing: one malformed decision refuses the whole call.
            DECISIONS_REFUSED.labels(refusal_reason(exc)).inc(len(request.decisions))
            raise
        with audit_write_spans(request.decisions):
            written = await self._store.record(
                decisions, timeout_s=remaining_s(context, self._timeout_s)
            )
        DECISIONS_RECORDED.inc(written)
        return audit_pb.RecordDecisionsResponse(recorded_count=written)

    async def StreamDecisions(
        self,
        request_iterator: AsyncIterator[audit_pb.StreamDecisionsRequest],
        context: Context,
    ) -> AsyncIterator[audit_pb.StreamDecisionsResponse]:
        """Store each batch, then acknowledge it; malformed decisions are acknowledged as
        rejected (re-sending them could never succeed), a store failure ends the stream with
        its status so the sender reconnects and re-sends."""
        try:
            async for request in request_iterator:
                if len(request.decisions) > MAX_RECORD_BATCH:
                    raise InvalidArgument.field(
                        "decisions", f"at most {MAX_RECORD_BATCH} per batch"
                    )
                valid: list[Decision] = []
                traced: list[pb.Decision] = []
                rejected: list[audit_pb.RejectedDecision] = []
                for i, d in enumerate(request.decisions):
                    try:
                        valid.append(checked_decision(d, i))
                        if d.trace_parent:
                            traced.append(d)
                    except InvalidArgument as exc:
                        DECISIONS_REFUSED.labels(refusal_reason(exc)).inc()
                        rejected.append(
                            audit_pb.RejectedDecision(
                                index=i, decision_id=d.decision_id, reason=exc.message
                            )
                        )
                with audit_write_spans(traced):
                    written = (
                        await self._store.record(
                            valid, timeout_s=remaining_s(context, self._timeout_s)
                        )
                        if valid
                        else 0
                    )
                DECISIONS_RECORDED.inc(written)
                yield audit_pb.StreamDecisionsResponse(
                    batch_id=request.batch_id, recorded_count=written, rejected=rejected
                )
        except RowcastError as error:
            await abort(context, error)

    @handles_errors
    async def GetDecision(
        self, request: audit_pb.GetDecisionRequest, context: Context
    ) -> audit_pb.GetDecisionResponse:
        if not request.decision_id:
            raise InvalidArgument.field("decision_id", "is required")
        bind(decision_id=request.decision_id)
        decision = await self._store.get(
            request.decision_id, timeout_s=remaining_s(context, self._timeout_s)
        )
        return audit_pb.GetDecisionResponse(decision=decision_to_pb(decision))

    @handles_errors
    async def ListDecisions(
        self, request: audit_pb.ListDecisionsRequest, context: Context
    ) -> audit_pb.ListDecisionsResponse:
        query = DecisionQuery.checked(
            subject=request.subject,
            model=request.model,
            version=request.model_version,
            key_hex=request.key,
            start_ms=request.start_time.ToMilliseconds()
            if request.HasField("start_time")
            else None,
            end_ms=request.end_time.ToMilliseconds() if request.HasField("end_time") else None,
        )
        decisions, token = await self._store.list_decisions(
            query,
            page_size(request.page_size),
            request.page_token,
            timeout_s=remaining_s(context, self._timeout_s),
        )
        return audit_pb.ListDecisionsResponse(
            decisions=[decision_to_pb(d) for d in decisions], next_page_token=token
        )

    @handles_errors
    async def CountDecisions(
        self, request: audit_pb.CountDecisionsRequest, context: Context
    ) -> audit_pb.CountDecisionsResponse:
        model = check_model_name(request.model)
        counts = await self._store.count(model, timeout_s=remaining_s(context, self._timeout_s))
        return audit_pb.CountDecisionsResponse(counts=[count_to_pb(c) for c in counts])

    @handles_errors
    async def Augment(
        self, request: audit_pb.AugmentRequest, context: Context
    ) -> audit_pb.AugmentResponse:
        if not request.decision_id:
            raise InvalidArgument.field("decision_id", "is required")
        if not request.HasField("augmentation"):
            raise InvalidArgument.field("augmentation", "is required")
        if len(request.request_id) > MAX_REQUEST_ID_CHARS:
            raise InvalidArgument.field("request_id", f"at most {MAX_REQUEST_ID_CHARS} characters")
        bind(decision_id=request.decision_id, request_id=request.request_id or None)
        augmentation = augmentation_from_pb(request.augmentation)
        if self._registry is not None:
            served = await self._store.get(
                request.decision_id, timeout_s=remaining_s(context, self._timeout_s)
            )
            model = await self._registry.get_model(
                served.model, timeout_s=remaining_s(context, self._timeout_s)
            )
            check_better_output(augmentation.better_output, model.output_kind)
        decision, replayed = await self._store.augment(
            request.decision_id,
            augmentation,
            timeout_s=remaining_s(context, self._timeout_s),
            request_id=request.request_id,
        )
        return audit_pb.AugmentResponse(decision=decision_to_pb(decision), replayed=replayed)
