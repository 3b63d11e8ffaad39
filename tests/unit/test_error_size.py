"""Errors stay small whatever the input: a value is quoted to ~100 characters, at most 20 bad
fields are named (the rest counted), and a status never takes more than 6 KiB of trailers, so
that C-core clients (Python's own, which refuse trailers over 8 KiB with a RESOURCE_EXHAUSTED
of their own) see the real error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import grpc
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2, status_pb2
from hypothesis import given
from hypothesis import strategies as st

from rowcast import errors
from rowcast.core.records import check_model_name
from rowcast.grpc_errors import MAX_STATUS_BYTES, OMITTED_VIOLATIONS, to_status
from rowcast_client import AsyncRowcastClient, InvalidArgumentError, Targets
from tests.unit.memory_services import MODEL, Services, running_services


def details(status: grpc.Status) -> status_pb2.Status:
    (raw,) = [v for k, v in status.trailing_metadata if k == "grpc-status-details-bin"]
    assert isinstance(raw, bytes)
    return status_pb2.Status.FromString(raw)


def unpacked(status: status_pb2.Status) -> tuple[error_details_pb2.ErrorInfo, list[str]]:
    info = error_details_pb2.ErrorInfo()
    bad = error_details_pb2.BadRequest()
    for detail in status.details:
        if not detail.Unpack(info):
            detail.Unpack(bad)
    return info, [v.field for v in bad.field_violations]


def trailer_bytes(status: grpc.Status) -> int:
    """grpc-message as sent (percent-encoded) plus the details in base64."""
    message = len(
        quote(status.details, safe="".join(chr(c) for c in range(0x20, 0x7F) if c != 0x25))
    )
    raw = int(details(status).ByteSize())
    return message + 4 * -(-raw // 3)


def many(n: int) -> errors.InvalidArgument:
    violations = [errors.FieldViolation(f"features.f{i}", "not a feature") for i in range(n)]
    return errors.InvalidArgument("bad features: " + errors.listing(violations, " "), violations)


def test_at_most_20_violations_are_named_and_the_rest_counted() -> None:
    """10,000 bad fields: the message and the BadRequest name 20, ErrorInfo counts the rest."""
    status = to_status(many(10_000))
    info, fields = unpacked(details(status))
    assert fields == [f"features.f{i}" for i in range(20)]
    assert info.metadata[OMITTED_VIOLATIONS] == "9980"
    assert status.details.endswith("; and 9,980 more")
    assert "features.f19 " in status.details and "features.f20 " not in status.details
    assert trailer_bytes(status) < MAX_STATUS_BYTES


def test_a_few_violations_are_all_named() -> None:
    """Up to 20 bad fields, all are named and nothing is said to be left out."""
    status = to_status(many(20))
    info, fields = unpacked(details(status))
    assert len(fields) == 20
    assert OMITTED_VIOLATIONS not in info.metadata
    assert "more" not in status.details


def test_a_long_value_is_quoted_to_100_characters() -> None:
    """A 10,000-character model name is quoted to 100 characters, with its length."""
    with pytest.raises(errors.InvalidArgument) as caught:
        check_model_name("A" * 10_000)
    (violation,) = caught.value.violations
    assert f"{'A' * 100!r}... (10,000 chars) is not a model name" in violation.description
    assert len(caught.value.message) < 400


def test_long_messages_fields_and_descriptions_are_clipped() -> None:
    """to_status clips what an error holds, whichever code built it: message, field paths and
    descriptions each say how long they were."""
    error = errors.InvalidArgument(
        "m" * 10_000, [errors.FieldViolation("f" * 10_000, "d" * 10_000)]
    )
    status = to_status(error)
    assert status.details == "m" * 2000 + "... (10,000 chars)"
    bad = error_details_pb2.BadRequest()
    assert details(status).details[1].Unpack(bad)
    (violation,) = bad.field_violations
    assert violation.field == "f" * 100 + "... (10,000 chars)"
    assert violation.description == "d" * 400 + "... (10,000 chars)"


@given(
    message=st.text(max_size=3000),
    violations=st.lists(
        st.builds(errors.FieldViolation, st.text(max_size=600), st.text(max_size=600)),
        max_size=60,
    ),
    code=st.sampled_from([errors.InvalidArgument, errors.NotFound, errors.StoreRejected]),
)
def test_any_status_fits_in_the_trailer_budget(
    message: str, violations: list[errors.FieldViolation], code: type[errors.RowcastError]
) -> None:
    """Whatever the text (multi-byte characters cost up to 12 bytes once percent-encoded),
    message plus details stay within MAX_STATUS_BYTES."""
    error = (
        errors.InvalidArgument(message, violations)
        if code is errors.InvalidArgument
        else code(message)
    )
    assert trailer_bytes(to_status(error)) <= MAX_STATUS_BYTES


def test_a_status_of_multibyte_text_is_cut_to_fit() -> None:
    """1,000 emoji in the message and in 20 violations: violations are dropped (and counted)
    before the message is cut further."""
    emoji = "💥" * 1000
    error = errors.InvalidArgument(emoji, [errors.FieldViolation(emoji, emoji) for _ in range(20)])
    status = to_status(error)
    info, fields = unpacked(details(status))
    assert trailer_bytes(status) <= MAX_STATUS_BYTES
    assert int(info.metadata[OMITTED_VIOLATIONS]) == 20 - len(fields) > 0


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def services() -> AsyncIterator[Services]:
    async with running_services() as running:
        yield running


@pytest_asyncio.fixture(loop_scope="session")
async def client(services: Services) -> AsyncIterator[AsyncRowcastClient]:
    targets = Targets(prediction=services.prediction, audit=services.audit)
    async with AsyncRowcastClient(targets, timeout_s=10.0) as c:
        yield c


async def test_a_10000_character_model_name_reaches_the_client_as_invalid_argument(
    client: AsyncRowcastClient,
) -> None:
    """Through the real client: INVALID_ARGUMENT naming `model`, not the client's own
    RESOURCE_EXHAUSTED for an oversized trailer."""
    with pytest.raises(InvalidArgumentError) as caught:
        await client.predict("m" * 10_000, {"balance": 1.0, "student": "no"})
    assert [v.field for v in caught.value.violations] == ["model"]
    assert "... (10,000 chars)" in caught.value.message
    assert len(caught.value.message) < 400


async def test_10000_extra_features_reach_the_client_as_invalid_argument(
    client: AsyncRowcastClient,
) -> None:
    """Through the real client: 20 of the 10,000 unknown features are named, and the message
    counts the rest."""
    features: dict[str, float | str] = {f"extra_{i:05}": 1.0 for i in range(10_000)}
    features.update(balance=1.0, student="no")
    with pytest.raises(InvalidArgumentError) as caught:
        await client.predict(MODEL, features)
    assert len(caught.value.violations) == 20
    assert all(v.description == "not a feature of this model" for v in caught.value.violations)
    assert caught.value.message.endswith("; and 9,980 more")


async def test_a_10000_character_feature_name_reaches_the_client_clipped(
    client: AsyncRowcastClient,
) -> None:
    """A feature name is part of the field path: the path is clipped, with its length."""
    with pytest.raises(InvalidArgumentError) as caught:
        await client.predict(MODEL, {"x" * 10_000: 1.0, "balance": 1.0, "student": "no"})
    (violation,) = caught.value.violations
    assert violation.field == "features." + "x" * 91 + "... (10,009 chars)"
