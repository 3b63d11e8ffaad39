"""The AuditService writes each decision once and checks what it records, over the in-memory
stores through a real in-process server: a replay is a no-op, other content under a stored id
is refused (ALREADY_EXISTS in RecordDecisions, `rejected` in the stream) and never applied;
unknown models and versions, version 0, NaN and out-of-kind outputs are refused. Augment's
review rules: a review needs a proposal by someone else, and the role its state needs."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator, Callable, Iterator

import grpc
import pytest
import pytest_asyncio

from rowcast.audit.servicer import AuditServicer, check_role
from rowcast.convert import decision_to_pb
from rowcast.core.keys import new_decision_id
from rowcast.core.records import AugmentationState, Decision, Source
from rowcast.core.signature import NumericFeature, Signature
from rowcast.errors import PermissionDenied
from rowcast.security.identity import Identity, Role, recorded_name, reset_identity, set_identity
from rowcast.server import RunningServer, start_server
from rowcast.store.memory import MemoryDecisions, MemoryModels
from rowcast.v1 import audit_service_pb2 as audit_pb
from rowcast.v1 import audit_service_pb2_grpc as audit_grpc
from rowcast.v1 import resources_pb2 as pb

MODEL = "credit"
SIGNATURE = Signature(
    (NumericFeature("x", edges=(1.0,), representatives=(0.0, 2.0), lower=0, upper=3),)
)


def decision(i: int = 0, **changes: object) -> Decision:
    d = Decision(
        decision_id=new_decision_id(),
        model=MODEL,
        model_version=1,
        subject=f"s-{i}",
        features={"x": float(i)},
        key_hex="0a00",
        output=0.25,
        source=Source.HBASE,
        decide_time_ms=1_700_000_000_000 + i,
    )
    return dataclasses.replace(d, **changes)  # type: ignore[arg-type]


class Audit:
    def __init__(self, running: RunningServer, store: MemoryDecisions, models: MemoryModels):
        self.running = running
        self.store = store
        self.models = models
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        self.stub = audit_grpc.AuditServiceStub(self.channel)

    async def record(self, *decisions: Decision) -> audit_pb.RecordDecisionsResponse:
        request = audit_pb.RecordDecisionsRequest(decisions=[decision_to_pb(d) for d in decisions])
        return await self.stub.RecordDecisions(request, timeout=5)

    async def stream(self, *decisions: Decision) -> audit_pb.StreamDecisionsResponse:
        async def batches() -> AsyncIterator[audit_pb.StreamDecisionsRequest]:
            yield audit_pb.StreamDecisionsRequest(
                batch_id=1, decisions=[decision_to_pb(d) for d in decisions]
            )

        call = self.stub.StreamDecisions(batches(), timeout=5)
        responses = [r async for r in call]
        assert len(responses) == 1
        return responses[0]

    async def augment(
        self, decision_id: str, better: float, actor: str, state: int = 0
    ) -> pb.Decision:
        request = audit_pb.AugmentRequest(
            decision_id=decision_id,
            augmentation=pb.Augmentation(
                better_output=better,
                source=pb.AUGMENTATION_SOURCE_PERSON,
                actor=actor,
                state=state,  # type: ignore[arg-type]
            ),
        )
        return (await self.stub.Augment(request, timeout=5)).decision


@pytest_asyncio.fixture(loop_scope="session")
async def audit() -> AsyncIterator[Audit]:
    store = MemoryDecisions()
    models = MemoryModels()
    models.add(MODEL, SIGNATURE)
    models.add_version(MODEL, 1)
    servicer = AuditServicer(store, 2.0, models, models)
    running = await start_server(
        lambda s: audit_grpc.add_AuditServiceServicer_to_server(servicer, s),
        ["rowcast.v1.AuditService"],
        "127.0.0.1",
        0,
    )
    a = Audit(running, store, models)
    yield a
    await a.channel.close()
    await running.stop(0.1)


async def test_a_replay_is_a_no_op(audit: Audit) -> None:
    """Re-sending a stored decision with the same content succeeds and writes nothing."""
    d = decision()
    assert (await audit.record(d)).recorded_count == 1
    writes = audit.store.writes
    assert (await audit.record(d)).recorded_count == 1
    assert audit.store.writes == writes and audit.store.rows[d.decision_id] == d


async def test_a_conflicting_record_call_is_refused_whole(audit: Audit) -> None:
    """A stored id re-sent with another output and version: ALREADY_EXISTS naming
    decisions[1].decision_id, and nothing of the call is written (not even its new one)."""
    audit.models.add_version(MODEL, 2)
    d = decision()
    await audit.record(d)
    fresh = decision(1)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await audit.record(fresh, dataclasses.replace(d, output=0.9, model_version=2))
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "decisions[1].decision_id" in (e.value.details() or "")
    assert audit.store.rows[d.decision_id] == d
    assert fresh.decision_id not in audit.store.rows


async def test_a_conflicting_streamed_decision_is_rejected_and_others_stored(
    audit: Audit,
) -> None:
    """In the stream, the conflicting decision is rejected (reason: conflict), never applied;
    the rest of its batch is stored."""
    d = decision()
    await audit.record(d)
    fresh = decision(2)
    ack = await audit.stream(fresh, dataclasses.replace(d, subject="someone else"))
    assert ack.recorded_count == 1
    assert [(r.index, r.decision_id) for r in ack.rejected] == [(1, d.decision_id)]
    assert "already recorded" in ack.rejected[0].reason
    assert audit.store.rows[d.decision_id] == d and fresh.decision_id in audit.store.rows


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"model": "nobody"}, "decisions[0].model"),
        ({"model_version": 9}, "decisions[0].model_version"),
        ({"model_version": 0}, "decisions[0].model_version"),
        ({"output": math.nan}, "decisions[0].output"),
        ({"output": math.inf}, "decisions[0].output"),
        ({"output": 1.5}, "decisions[0].output"),
    ],
)
async def test_unchecked_decisions_are_refused(
    audit: Audit, changes: dict[str, object], field: str
) -> None:
    """Unknown model or version, version 0, a non-finite output or a probability outside
    [0, 1]: INVALID_ARGUMENT naming the field in RecordDecisions, `rejected` in the stream,
    nothing written either way."""
    bad = dataclasses.replace(decision(), **changes)  # type: ignore[arg-type]
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await audit.record(bad)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (e.value.details() or "")
    ack = await audit.stream(decision(5), bad)
    assert ack.recorded_count == 1 and [r.index for r in ack.rejected] == [1]
    assert field.replace("[0]", "[1]") in ack.rejected[0].reason
    assert bad.decision_id not in audit.store.rows


async def test_known_versions_are_looked_up_once(audit: Audit) -> None:
    """The registry is asked once per (model, version), not once per batch."""
    before = audit.models.calls["get_version"]
    for i in range(5):
        await audit.record(decision(i, model_version=1))
    assert audit.models.calls["get_version"] - before <= 1


async def test_a_review_approves_the_proposal_of_someone_else(audit: Audit) -> None:
    """Propose, then approve by another actor with better_output 0: the proposal's output is
    stored and the review names the proposal it reviews."""
    d = decision()
    await audit.record(d)
    proposed = await audit.augment(d.decision_id, 0.75, "ana")
    approved = await audit.augment(d.decision_id, 0.0, "ben", pb.AUGMENTATION_STATE_APPROVED)
    review = approved.augmentations[-1]
    assert review.better_output == 0.75 and review.actor == "ben"
    assert review.reviewed_augmentation_id == proposed.augmentations[-1].augmentation_id


@pytest.mark.parametrize(
    ("propose", "actor", "better", "code"),
    [
        (False, "ben", 0.75, grpc.StatusCode.FAILED_PRECONDITION),
        (True, "ana", 0.75, grpc.StatusCode.PERMISSION_DENIED),
        (True, "ben", 0.5, grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
async def test_a_bad_review_is_refused(
    audit: Audit, propose: bool, actor: str, better: float, code: grpc.StatusCode
) -> None:
    """Nothing proposed: FAILED_PRECONDITION; the proposer approving their own proposal:
    PERMISSION_DENIED; another better output than the proposal's: INVALID_ARGUMENT."""
    d = decision()
    await audit.record(d)
    if propose:
        await audit.augment(d.decision_id, 0.75, "ana")
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await audit.augment(d.decision_id, better, actor, pb.AUGMENTATION_STATE_APPROVED)
    assert e.value.code() == code


@pytest.fixture
def as_caller() -> Iterator[Callable[..., None]]:
    tokens = []

    def use(name: str, *roles: Role) -> None:
        tokens.append(set_identity(Identity(name, frozenset(roles))))

    yield use
    for token in reversed(tokens):
        reset_identity(token)


def test_each_state_needs_its_role(as_caller: Callable[..., None]) -> None:
    """With authentication, PROPOSED needs reviewer and APPROVED/REJECTED need approver;
    the refusal names the role."""
    use = as_caller
    use("rita", Role.REVIEWER)
    check_role(AugmentationState.PROPOSED)
    for state in (AugmentationState.APPROVED, AugmentationState.REJECTED):
        with pytest.raises(PermissionDenied, match="needs role approver"):
            check_role(state)
    use("abe", Role.APPROVER)
    check_role(AugmentationState.APPROVED)
    with pytest.raises(PermissionDenied, match="needs role reviewer"):
        check_role(AugmentationState.PROPOSED)


def test_the_recorded_actor_is_the_authenticated_name(as_caller: Callable[..., None]) -> None:
    """With authentication an empty actor records the caller's name and another name is
    refused; without it the actor given is recorded."""
    assert recorded_name(" ana ", "augmentation.actor") == "ana"
    as_caller("rita", Role.REVIEWER)
    assert recorded_name("", "augmentation.actor") == "rita"
    with pytest.raises(PermissionDenied):
        recorded_name("ana", "augmentation.actor")
