"""No request, however malformed, makes the PredictionService or the AuditService answer
UNKNOWN or INTERNAL: hypothesis generates requests for every RPC of theirs from the contracts
and calls the real servers in process, over the in-memory stores. (The ModelService needs
HBase: tests/integration/test_fuzz.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rowcast.grpc_errors import DOMAIN
from tests.fuzz_messages import FORBIDDEN, TRAILER_LIMIT, Rpc, call, requests, rpcs
from tests.unit.memory_services import DECISION_ID, IDLE_MODEL, MODEL, Services, running_services

RPCS = rpcs(["PredictionService", "AuditService"])
#: Valid names, so that requests get past the first check and reach deeper ones.
HINTS = (MODEL, IDLE_MODEL, "balance", "student", "yes", "current", "canary", DECISION_ID)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def services() -> AsyncIterator[Services]:
    async with running_services() as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def channels(services: Services) -> AsyncIterator[dict[str, grpc.Channel]]:
    prediction = grpc.insecure_channel(services.prediction)
    audit = grpc.insecure_channel(services.audit)
    yield {"rowcast.v1.PredictionService": prediction, "rowcast.v1.AuditService": audit}
    prediction.close()
    audit.close()


def test_every_rpc_of_both_services_is_fuzzed() -> None:
    """The RPCs come from the service descriptors: each service has some, Predict among them."""
    names = {rpc.name for rpc in RPCS}
    assert {"PredictionService.Predict", "PredictionService.StreamPredict"} <= names
    assert {"AuditService.ListDecisions", "AuditService.RecordDecisions"} <= names


@pytest.mark.parametrize("rpc", RPCS, ids=lambda rpc: rpc.name)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
async def test_no_request_gets_unknown_or_internal(
    channels: dict[str, grpc.Channel], rpc: Rpc, data: st.DataObject
) -> None:
    """Any request gets OK or a rowcast status (ErrorInfo in the rowcast.dev domain, trailers
    under 8 KiB), never UNKNOWN, INTERNAL, DATA_LOSS or UNIMPLEMENTED."""
    sent: list[Message] = data.draw(requests(rpc, HINTS), label="requests")
    # The servers run on this loop: the blocking call runs in a thread.
    outcome = await asyncio.to_thread(call, channels[rpc.service], rpc, sent, 10.0)
    assert outcome.code not in FORBIDDEN, outcome
    if outcome.code is not grpc.StatusCode.OK:
        info = outcome.error_info()
        assert info is not None and info.domain == DOMAIN, outcome
        assert outcome.trailer_bytes < TRAILER_LIMIT, outcome.trailer_bytes
