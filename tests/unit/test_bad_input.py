"""Bad input found by trying the services as an outside caller, each refused with a status
that names the field (or the stream position): out-of-range Timestamps, and the errors that end
a StreamPredict."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
import pytest_asyncio
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2

from rowcast.convert import TIMESTAMP_MAX_SECONDS, TIMESTAMP_MIN_SECONDS, timestamp_ms
from rowcast.errors import InvalidArgument
from rowcast.v1 import audit_service_pb2 as audit_pb
from rowcast.v1 import prediction_service_pb2 as pred_pb
from rowcast.v1 import resources_pb2 as pb
from tests.fuzz_messages import Outcome, call, rpcs
from tests.unit.memory_services import (
    DECISION_ID,
    IDLE_MODEL,
    MODEL,
    VERSION,
    Services,
    running_services,
)

OUT_OF_RANGE = [
    Timestamp(seconds=-(2**62)),
    Timestamp(seconds=TIMESTAMP_MIN_SECONDS - 1),
    Timestamp(seconds=TIMESTAMP_MAX_SECONDS + 1),
    Timestamp(seconds=0, nanos=-1),
    Timestamp(seconds=0, nanos=1_000_000_000),
]
RPC = {rpc.name: rpc for rpc in rpcs()}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def services() -> AsyncIterator[Services]:
    async with running_services() as running:
        yield running


@pytest.fixture(scope="module")
def channels(services: Services) -> Iterator[dict[str, grpc.Channel]]:
    prediction = grpc.insecure_channel(services.prediction)
    audit = grpc.insecure_channel(services.audit)
    yield {"PredictionService": prediction, "AuditService": audit}
    prediction.close()
    audit.close()


async def send(
    channels: dict[str, grpc.Channel], name: str, *requests: object
) -> tuple[Outcome, list[str]]:
    """Call the RPC (blocking, in a thread: the servers run on this loop); how it ended and
    the fields its BadRequest names."""
    rpc = RPC[name]
    channel = channels[name.split(".")[0]]
    outcome = await asyncio.to_thread(call, channel, rpc, list(requests), 10.0)  # type: ignore[arg-type]
    fields: list[str] = []
    for key, value in outcome.trailers:
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            for detail in status_pb2.Status.FromString(value).details:
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(bad):
                    fields.extend(v.field for v in bad.field_violations)
    return outcome, fields


@pytest.mark.parametrize("ts", OUT_OF_RANGE, ids=lambda t: f"{t.seconds}s{t.nanos}ns")
def test_timestamp_ms_refuses_what_a_timestamp_cannot_hold(ts: Timestamp) -> None:
    """Outside 0001-01-01..9999-12-31 or nanos outside [0, 1e9): INVALID_ARGUMENT naming the
    field, never protobuf's ValueError."""
    with pytest.raises(InvalidArgument) as caught:
        timestamp_ms(ts, "start_time")
    assert [v.field for v in caught.value.violations] == ["start_time"]


def test_timestamp_ms_takes_the_whole_range() -> None:
    """The first and the last instant a Timestamp holds are accepted."""
    first = Timestamp(seconds=TIMESTAMP_MIN_SECONDS)
    last = Timestamp(seconds=TIMESTAMP_MAX_SECONDS, nanos=999_999_999)
    assert timestamp_ms(first, "t") == TIMESTAMP_MIN_SECONDS * 1000
    assert timestamp_ms(last, "t") == TIMESTAMP_MAX_SECONDS * 1000 + 999


@pytest.mark.parametrize("field", ["start_time", "end_time"])
@pytest.mark.parametrize("ts", OUT_OF_RANGE, ids=lambda t: f"{t.seconds}s{t.nanos}ns")
async def test_list_decisions_refuses_out_of_range_timestamps(
    channels: dict[str, grpc.Channel], field: str, ts: Timestamp
) -> None:
    """ListDecisions with an out-of-range start_time or end_time: INVALID_ARGUMENT naming it."""
    request = audit_pb.ListDecisionsRequest()
    getattr(request, field).CopyFrom(ts)
    outcome, fields = await send(channels, "AuditService.ListDecisions", request)
    assert outcome.code is grpc.StatusCode.INVALID_ARGUMENT, outcome
    assert fields == [field]


async def test_record_decisions_refuses_an_out_of_range_decide_time(
    channels: dict[str, grpc.Channel],
) -> None:
    """A decision whose decide_time no Timestamp can hold: INVALID_ARGUMENT naming it."""
    decision = pb.Decision(
        decision_id=DECISION_ID,
        model=MODEL,
        model_version=VERSION,
        output=0.5,
        source=pb.PREDICTION_SOURCE_HBASE,
        decide_time=Timestamp(seconds=0, nanos=-1),
    )
    request = audit_pb.RecordDecisionsRequest(decisions=[decision])
    outcome, fields = await send(channels, "AuditService.RecordDecisions", request)
    assert outcome.code is grpc.StatusCode.INVALID_ARGUMENT, outcome
    assert fields == ["decisions[0].decide_time"]


def stream(*requests: pred_pb.PredictRequest) -> list[pred_pb.StreamPredictRequest]:
    return [pred_pb.StreamPredictRequest(request=r) for r in requests]


GOOD = pred_pb.PredictRequest(
    model=MODEL,
    features={
        "balance": pb.FeatureValue(number_value=50),
        "student": pb.FeatureValue(string_value="no"),
    },
)


async def test_a_stream_ended_by_a_missing_model_names_its_position(
    channels: dict[str, grpc.Channel],
) -> None:
    """The fifth request has no model: INVALID_ARGUMENT naming `stream[4].model`."""
    outcome, fields = await send(
        channels,
        "PredictionService.StreamPredict",
        *stream(GOOD, GOOD, GOOD, GOOD, pred_pb.PredictRequest()),
    )
    assert outcome.code is grpc.StatusCode.INVALID_ARGUMENT, outcome
    assert fields == ["stream[4].model"]
    assert outcome.message.startswith("stream[4].model: is required")


async def test_a_stream_ended_by_a_bad_alias_names_its_position(
    channels: dict[str, grpc.Channel],
) -> None:
    """A malformed alias in the second request: `stream[1].alias`."""
    bad = pred_pb.PredictRequest()
    bad.CopyFrom(GOOD)
    bad.alias = "Not An Alias"
    outcome, fields = await send(channels, "PredictionService.StreamPredict", *stream(GOOD, bad))
    assert outcome.code is grpc.StatusCode.INVALID_ARGUMENT, outcome
    assert fields == ["stream[1].alias"]


async def test_a_stream_ended_by_bad_features_names_its_position(
    channels: dict[str, grpc.Channel],
) -> None:
    """An unknown feature in the third request: `stream[2].features.colour`."""
    bad = pred_pb.PredictRequest()
    bad.CopyFrom(GOOD)
    bad.features["colour"].string_value = "red"
    outcome, fields = await send(
        channels, "PredictionService.StreamPredict", *stream(GOOD, GOOD, bad)
    )
    assert outcome.code is grpc.StatusCode.INVALID_ARGUMENT, outcome
    assert fields == ["stream[2].features.colour"]


async def test_a_stream_ended_by_an_unknown_model_names_its_position(
    channels: dict[str, grpc.Channel],
) -> None:
    """An unregistered model in the fourth request: NOT_FOUND, `stream[3]: ...`."""
    unknown = pred_pb.PredictRequest()
    unknown.CopyFrom(GOOD)
    unknown.model = "nobody"
    outcome, _ = await send(
        channels, "PredictionService.StreamPredict", *stream(GOOD, GOOD, GOOD, unknown)
    )
    assert outcome.code is grpc.StatusCode.NOT_FOUND, outcome
    assert outcome.message.startswith("stream[3]: ") and "nobody" in outcome.message


async def test_a_stream_ended_by_a_model_with_no_active_version_names_its_position(
    channels: dict[str, grpc.Channel],
) -> None:
    """A model with no active version in the second request: FAILED_PRECONDITION,
    `stream[1]: ...`."""
    idle = pred_pb.PredictRequest()
    idle.CopyFrom(GOOD)
    idle.model = IDLE_MODEL
    outcome, _ = await send(channels, "PredictionService.StreamPredict", *stream(GOOD, idle))
    assert outcome.code is grpc.StatusCode.FAILED_PRECONDITION, outcome
    assert outcome.message.startswith(f"stream[1]: model '{IDLE_MODEL}' has no active version")


async def test_a_stream_of_good_requests_is_answered(channels: dict[str, grpc.Channel]) -> None:
    """The same requests without the bad one are all answered (the errors above are theirs)."""
    outcome, _ = await send(channels, "PredictionService.StreamPredict", *stream(GOOD, GOOD, GOOD))
    assert outcome.code is grpc.StatusCode.OK, outcome
