"""AuditService: stores decisions (each once, checked against the registry), serves them back,
and records augmentations under the review rules (a proposal, then a review by someone else)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import AsyncIterator, Sequence

import grpc

from rowcast.convert import (
    AUG_SOURCE_FROM_PB,
    AUG_STATE_FROM_PB,
    decision_from_pb,
    decision_to_pb,
    timestamp_ms,
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
from rowcast.errors import (
    DecisionConflict,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    ModelNotFound,
    PermissionDenied,
    RowcastError,
    VersionNotFound,
)
from rowcast.grpc_errors import abort, handles_errors
from rowcast.paging import page_size
from rowcast.security.identity import Role, current_identity, recorded_name
from rowcast.store.protocols import DecisionStore, ModelReader, VersionReader
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
#: (model, version) pairs the servicer remembers as existing, at most.
MAX_KNOWN_VERSIONS = 10_000


def augmentation_from_pb(a: pb.Augmentation) -> Augmentation:
    """Validate an augmentation request; every bad field is reported at once."""
    violations: list[FieldViolation] = []
    if not math.isfinite(a.better_output):
        violations.append(FieldViolation("augmentation.better_output", "must be a finite number"))
    source = AUG_SOURCE_FROM_PB.get(a.source)
    if not isinstance(source, AugmentationSource):
        violations.append(FieldViolation("augmentation.source", "is required (PERSON or PROGRAM)"))
    if len(a.actor) > MAX_TEXT_CHARS:
        violations.append(FieldViolation("augmentation.actor", f"at most {MAX_TEXT_CHARS} chars"))
        actor = ""
    else:
        # The authenticated name (a claimed one must equal it); the caller's word without auth.
        actor = recorded_name(a.actor, "augmentation.actor")
        if not actor:
            violations.append(FieldViolation("augmentation.actor", "is required"))
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
        actor=actor,
        reason=a.reason,
        state=state,
        create_time_ms=int(time.time() * 1000),
    )


def checked_decision(d: pb.Decision, index: int) -> Decision:
    """A decision sent by a prediction server, with the fields its row keys are built from
    validated (a malformed one must be refused, never written half-indexed), a version and a
    finite output. Whether the model and version exist is `KnownVersions.check`."""
    decision = decision_from_pb(d, index)
    try:
        decision_id_bytes(decision.decision_id)
    except ValueError as exc:
        raise InvalidArgument.field(f"decisions[{index}].decision_id", str(exc)) from exc
    check_model_name(decision.model, f"decisions[{index}].model")
    if decision.model_version < 1:
        raise InvalidArgument.field(
            f"decisions[{index}].model_version", f"must be 1 or more, got {decision.model_version}"
        )
    if not math.isfinite(decision.output):
        raise InvalidArgument.field(f"decisions[{index}].output", "must be a finite number")
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


class KnownVersions:
    """Checks recorded decisions against the registry: the model exists, the version exists
    for it, and the output is of the model's kind. Pairs found are remembered (a version is
    never deleted, a model's kind never changes), so the hot audit path asks HBase only about
    a pair it has not seen; pairs not found are asked again (they may be created later)."""

    def __init__(self, models: ModelReader | None, versions: VersionReader | None) -> None:
        """Without `models` nothing is checked here (in-memory tests); without `versions` the
        version's existence is not."""
        self._models = models
        self._versions = versions
        self._kinds: dict[tuple[str, int], OutputKind] = {}

    async def refusals(
        self, decisions: Sequence[tuple[int, Decision]], timeout_s: float
    ) -> dict[int, InvalidArgument]:
        """The error of each (position, decision) that fails the checks, by position."""
        if self._models is None:
            return {}
        refused: dict[int, InvalidArgument] = {}
        for i, d in decisions:
            pair = (d.model, d.model_version)
            kind = self._kinds.get(pair)
            if kind is None:
                try:
                    kind = await self._lookup(pair, timeout_s)
                except (ModelNotFound, VersionNotFound) as exc:
                    field = "model" if isinstance(exc, ModelNotFound) else "model_version"
                    refused[i] = InvalidArgument.field(f"decisions[{i}].{field}", exc.message)
                    continue
            if kind is OutputKind.PROBABILITY and not 0.0 <= d.output <= 1.0:
                refused[i] = InvalidArgument.field(
                    f"decisions[{i}].output", f"must be a probability in [0, 1], got {d.output}"
                )
        return refused

    async def _lookup(self, pair: tuple[str, int], timeout_s: float) -> OutputKind:
        assert self._models is not None
        model = await self._models.get_model(pair[0], timeout_s=timeout_s)
        if self._versions is not None:
            await self._versions.get_version(pair[0], pair[1], timeout_s=timeout_s)
        if len(self._kinds) >= MAX_KNOWN_VERSIONS:
            self._kinds.clear()
        self._kinds[pair] = model.output_kind
        return model.output_kind


def conflict_message(index: int, decision_id: str) -> str:
    return (
        f"decisions[{index}].decision_id: {decision_id} is already recorded with other content "
        "(a decision is written once)"
    )


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


def needed_role(state: AugmentationState) -> Role:
    """Augment is one RPC for two duties: proposing needs a reviewer, reviewing an approver."""
    return Role.REVIEWER if state is AugmentationState.PROPOSED else Role.APPROVER


def check_role(state: AugmentationState) -> None:
    """PermissionDenied naming the role an Augment of this state needs, when the caller is
    authenticated and lacks it (without authentication there is nobody to check)."""
    identity = current_identity()
    role = needed_role(state)
    if identity is not None and not identity.has(role):
        raise PermissionDenied(f"Augment with state {state.value.upper()} needs role {role.value}")


def reviewed(decision: Decision, review: Augmentation) -> Augmentation:
    """A review (APPROVED or REJECTED) as it is recorded: of the decision's latest proposal,
    by someone other than its proposer, with the proposal's better output (0: take it)."""
    proposal = next(
        (a for a in reversed(decision.augmentations) if a.state is AugmentationState.PROPOSED),
        None,
    )
    if proposal is None:
        raise FailedPrecondition(f"decision {decision.decision_id}: nothing proposed to review")
    if proposal.actor == review.actor:
        raise PermissionDenied("an approver may not review their own proposal")
    better = review.better_output
    if better == 0.0:
        better = proposal.better_output
    elif better != proposal.better_output:
        raise InvalidArgument.field(
            "augmentation.better_output",
            f"must equal the proposal's ({proposal.better_output}) or be 0 (take the proposal's)",
        )
    return dataclasses.replace(
        review, better_output=better, reviewed_augmentation_id=proposal.augmentation_id
    )


class AuditServicer(audit_grpc.AuditServiceServicer):
    """Maps AuditService calls onto the audit store; checks recorded decisions against the
    registry (`KnownVersions`) and augmentations against the review rules."""

    def __init__(
        self,
        store: DecisionStore,
        store_timeout_s: float,
        registry: ModelReader | None = None,
        versions: VersionReader | None = None,
    ) -> None:
        """`registry`: output kinds (recorded outputs, better outputs) and known models;
        `versions`: known versions. Without them decisions are checked for form only."""
        self._store = store
        self._timeout_s = store_timeout_s
        self._registry = registry
        self._known = KnownVersions(registry, versions)
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
            refused = await self._known.refusals(
                list(enumerate(decisions)), remaining_s(context, self._timeout_s)
            )
            if refused:
                raise refused[min(refused)]
        except InvalidArgument as exc:
            # All or nothing: one malformed decision refuses the whole call.
            DECISIONS_REFUSED.labels(refusal_reason(exc)).inc(len(request.decisions))
            raise
        with audit_write_spans(request.decisions):
            result = await self._store.record(
                decisions, timeout_s=remaining_s(context, self._timeout_s), all_or_nothing=True
            )
        if result.conflicts:
            DECISIONS_REFUSED.labels("conflict").inc(len(result.conflicts))
            index, decision_id = result.conflicts[0]
            more = len(result.conflicts) - 1
            raise DecisionConflict(
                conflict_message(index, decision_id)
                + (f" (and {more} more)" if more else "")
                + "; nothing of this call was written"
            )
        stored = result.written + result.replayed
        DECISIONS_RECORDED.inc(stored)
        return audit_pb.RecordDecisionsResponse(recorded_count=stored)

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
                yield await self._record_batch(request, context)
        except RowcastError as error:
            await abort(context, error)

    async def _record_batch(
        self, request: audit_pb.StreamDecisionsRequest, context: Context
    ) -> audit_pb.StreamDecisionsResponse:
        """Store one batch of the stream: the malformed, the unchecked (unknown model or
        version, output of another kind) and the conflicting decisions are rejected, the rest
        stored (each once)."""
        sent = request.decisions
        rejected: list[audit_pb.RejectedDecision] = []

        def reject(i: int, reason: str, message: str) -> None:
            DECISIONS_REFUSED.labels(reason).inc()
            rejected.append(
                audit_pb.RejectedDecision(index=i, decision_id=sent[i].decision_id, reason=message)
            )

        formed: list[tuple[int, Decision]] = []
        for i, d in enumerate(sent):
            try:
                formed.append((i, checked_decision(d, i)))
            except InvalidArgument as exc:
                reject(i, refusal_reason(exc), exc.message)
        refused = await self._known.refusals(formed, remaining_s(context, self._timeout_s))
        for i, error in refused.items():
            reject(i, refusal_reason(error), error.message)
        valid = [(i, d) for i, d in formed if i not in refused]
        stored = 0
        if valid:
            with audit_write_spans([sent[i] for i, _ in valid if sent[i].trace_parent]):
                result = await self._store.record(
                    [d for _, d in valid], timeout_s=remaining_s(context, self._timeout_s)
                )
            for j, decision_id in result.conflicts:
                i = valid[j][0]
                reject(i, "conflict", conflict_message(i, decision_id))
            stored = result.written + result.replayed
        DECISIONS_RECORDED.inc(stored)
        rejected.sort(key=lambda r: r.index)
        return audit_pb.StreamDecisionsResponse(
            batch_id=request.batch_id, recorded_count=stored, rejected=rejected
        )

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
            start_ms=timestamp_ms(request.start_time, "start_time")
            if request.HasField("start_time")
            else None,
            end_ms=timestamp_ms(request.end_time, "end_time")
            if request.HasField("end_time")
            else None,
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
        check_role(augmentation.state)
        served: Decision | None = None
        if augmentation.state is not AugmentationState.PROPOSED:
            served = await self._store.get(
                request.decision_id, timeout_s=remaining_s(context, self._timeout_s)
            )
            augmentation = reviewed(served, augmentation)
        if self._registry is not None:
            if served is None:
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
