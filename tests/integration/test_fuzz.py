"""No request, however malformed, makes any of the three real services answer UNKNOWN or
INTERNAL: hypothesis generates requests for every RPC of the contracts and sends them to the
real suite over real HBase, where store refusals (StoreRejected, INTERNAL) would show.

The suite is shared with the other tests: requests that change state never name the demo
model (its name is swapped for one of the fuzz's own), so no fuzzed call retires, activates,
aliases or records anything of it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import grpc
import pytest
import pytest_asyncio
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rowcast.grpc_errors import DOMAIN
from rowcast.v1 import audit_service_pb2 as audit_pb
from rowcast.v1 import resources_pb2 as pb
from rowcast_client import AlreadyExistsError, AsyncRowcastClient
from rowcast_client.channel import CHANNEL_OPTIONS, sync_channel
from tests.fuzz_messages import FORBIDDEN, TRAILER_LIMIT, Rpc, call, requests, rpcs
from tests.integration.conftest import MODEL, Suite

pytestmark = pytest.mark.integration

RPCS = rpcs()
#: RPCs that only read (Predict's decisions are audited, but only for valid inputs of the
#: demo model, which the fuzz's random features never are).
READS = ("Get", "List", "Count", "Watch", "Diff", "Predict", "StreamPredict")
#: What state-changing requests name instead of the demo model.
OWN_MODEL = "fuzz_model"
HINTS = (MODEL, OWN_MODEL, "current", "canary", "previous", "default")


def reads_only(rpc: Rpc) -> bool:
    return rpc.method.name.startswith(READS)


def without_demo_model(message: Message) -> Message:
    """The message with every string field equal to the demo model's name replaced, at any
    depth (RecordDecisions' decisions, RegisterModel's model.name, ...)."""
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                values = [OWN_MODEL if v == MODEL else v for v in value]
                del value[:]
                value.extend(values)
            elif value == MODEL:
                setattr(message, field.name, OWN_MODEL)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            entry = field.message_type
            if entry is not None and entry.GetOptions().map_entry:
                key, item = entry.fields_by_name["key"], entry.fields_by_name["value"]
                if key.type == FieldDescriptor.TYPE_STRING and MODEL in value:
                    if item.type == FieldDescriptor.TYPE_MESSAGE:
                        value[OWN_MODEL].CopyFrom(value[MODEL])
                    else:
                        value[OWN_MODEL] = value[MODEL]
                    del value[MODEL]
                continue
            for item in value if field.is_repeated else [value]:
                without_demo_model(item)
    return message


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def own_model(suite: Suite) -> str:
    """The fuzz's own model, registered (no version): state-changing requests that name it get
    past the model lookup to the version and alias checks."""
    model = pb.Model(
        name=OWN_MODEL,
        signature=pb.Signature(
            features=[
                pb.Feature(
                    name="x",
                    numeric=pb.NumericBinning(
                        edges=[0.5], representatives=[0.0, 1.0], lower=0.0, upper=1.0
                    ),
                )
            ]
        ),
        output=pb.OutputSpec(kind=pb.OUTPUT_KIND_PROBABILITY),
    )
    async with AsyncRowcastClient(suite.targets, timeout_s=30.0) as client:
        with contextlib.suppress(AlreadyExistsError):
            await client.register_model(model)
    return OWN_MODEL


@pytest.fixture(scope="module")
def channels(suite: Suite, own_model: str) -> Iterator[dict[str, grpc.Channel]]:
    """Synchronous channels built from the suite's targets (TLS and token included): grpc.aio's
    client can misreport a stream's status (tests/fuzz_messages.py)."""
    targets = suite.targets
    made = {
        "rowcast.v1.PredictionService": sync_channel(
            targets.prediction, targets.credentials, CHANNEL_OPTIONS
        ),
        "rowcast.v1.AuditService": sync_channel(
            targets.audit, targets.credentials, CHANNEL_OPTIONS
        ),
        "rowcast.v1.ModelService": sync_channel(
            targets.model, targets.credentials, CHANNEL_OPTIONS
        ),
    }
    yield made
    for channel in made.values():
        channel.close()


def test_every_rpc_of_the_three_services_is_fuzzed() -> None:
    """The RPCs come from the service descriptors: each of the three services is there."""
    assert {rpc.service for rpc in RPCS} == {
        "rowcast.v1.PredictionService",
        "rowcast.v1.AuditService",
        "rowcast.v1.ModelService",
    }


def test_state_changing_requests_never_name_the_demo_model() -> None:
    """The swap reaches nested and repeated fields and map keys."""
    request = audit_pb.RecordDecisionsRequest(
        decisions=[pb.Decision(model=MODEL, features={MODEL: pb.FeatureValue(number_value=1)})]
    )
    without_demo_model(request)
    assert MODEL not in str(request)
    assert request.decisions[0].model == OWN_MODEL
    assert list(request.decisions[0].features) == [OWN_MODEL]


@pytest.mark.parametrize("rpc", RPCS, ids=lambda rpc: rpc.name)
@settings(
    max_examples=60,
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
    if not reads_only(rpc):
        sent = [without_demo_model(m) for m in sent]
    # The servers run on this loop: the blocking call runs in a thread.
    outcome = await asyncio.to_thread(call, channels[rpc.service], rpc, sent, 30.0)
    assert outcome.code not in FORBIDDEN, outcome
    if outcome.code is not grpc.StatusCode.OK:
        info = outcome.error_info()
        assert info is not None and info.domain == DOMAIN, outcome
        assert outcome.trailer_bytes < TRAILER_LIMIT, outcome.trailer_bytes
