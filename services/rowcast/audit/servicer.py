"""AuditService: stores decisions, serves them back, and records augmentations."""

from __future__ import annotations

import math
import time

import grpc

from rowcast.convert import (
    AUG_SOURCE_FROM_PB,
    AUG_STATE_FROM_PB,
    decision_from_pb,
    decision_to_pb,
)
from rowcast.core.keys import new_decision_id
from rowcast.core.records import (
    Augmentation,
    AugmentationSource,
    AugmentationState,
    check_subject,
)
from rowcast.deadlines import remaining_s
from rowcast.errors import FieldViolation, InvalidArgument
from rowcast.grpc_errors import handles_errors
from rowcast.paging import page_size
from rowcast.store.audit import AuditStore
from rowcast.v1 import audit_service_pb2 as audit_pb
from rowcast.v1 import audit_service_pb2_grpc as audit_grpc
from rowcast.v1 import resources_pb2 as pb

Context = grpc.aio.ServicerContext[object, object]

MAX_RECORD_BATCH = 5000
MAX_TEXT_CHARS = 1000


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


class AuditServicer(audit_grpc.AuditServiceServicer):
    """Maps AuditService calls onto the audit store."""

    def __init__(self, store: AuditStore, store_timeout_s: float) -> None:
        self._store = store
        self._timeout_s = store_timeout_s

    @handles_errors
    async def RecordDecisions(
        self, request: audit_pb.RecordDecisionsRequest, context: Context
    ) -> audit_pb.RecordDecisionsResponse:
        if len(request.decisions) > MAX_RECORD_BATCH:
            raise InvalidArgument.field(
                "decisions", f"at most {MAX_RECORD_BATCH} per call, got {len(request.decisions)}"
            )
        decisions = [decision_from_pb(d, i) for i, d in enumerate(request.decisions)]
        written = await self._store.record(decisions, remaining_s(context, self._timeout_s))
        return audit_pb.RecordDecisionsResponse(recorded_count=written)

    @handles_errors
    async def GetDecision(
        self, request: audit_pb.GetDecisionRequest, context: Context
    ) -> audit_pb.GetDecisionResponse:
        if not request.decision_id:
            raise InvalidArgument.field("decision_id", "is required")
        decision = await self._store.get(request.decision_id, remaining_s(context, self._timeout_s))
        return audit_pb.GetDecisionResponse(decision=decision_to_pb(decision))

    @handles_errors
    async def ListDecisions(
        self, request: audit_pb.ListDecisionsRequest, context: Context
    ) -> audit_pb.ListDecisionsResponse:
        if not request.subject:
            raise InvalidArgument.field("subject", "is required")
        subject = check_subject(request.subject)
        decisions, token = await self._store.list_by_subject(
            subject,
            page_size(request.page_size),
            request.page_token,
            remaining_s(context, self._timeout_s),
        )
        return audit_pb.ListDecisionsResponse(
            decisions=[decision_to_pb(d) for d in decisions], next_page_token=token
        )

    @handles_errors
    async def Augment(
        self, request: audit_pb.AugmentRequest, context: Context
    ) -> audit_pb.AugmentResponse:
        if not request.decision_id:
            raise InvalidArgument.field("decision_id", "is required")
        if not request.HasField("augmentation"):
            raise InvalidArgument.field("augmentation", "is required")
        augmentation = augmentation_from_pb(request.augmentation)
        decision = await self._store.augment(
            request.decision_id, augmentation, remaining_s(context, self._timeout_s)
        )
        return audit_pb.AugmentResponse(decision=decision_to_pb(decision))
