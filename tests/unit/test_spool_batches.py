"""A StreamDecisions batch built from the spooled bytes (spool/batches.py) is the message the
AuditService would get from building it field by field, and a record that does not parse is
kept out of it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rowcast.spool.batches import check, encode_batch, varint
from rowcast.v1 import audit_service_pb2 as audit_pb
from rowcast.v1 import resources_pb2 as pb

decisions = st.builds(
    pb.Decision,
    decision_id=st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
    model=st.text(max_size=20),
    model_version=st.integers(0, 2**31),
    subject=st.text(max_size=300),
    output=st.floats(allow_nan=False),
    key=st.text(alphabet="0123456789abcdef", max_size=64),
    features=st.dictionaries(
        st.text(max_size=10),
        st.one_of(
            st.builds(pb.FeatureValue, number_value=st.floats(allow_nan=False)),
            st.builds(pb.FeatureValue, string_value=st.text(max_size=20)),
        ),
        max_size=5,
    ),
)


@given(st.integers(0, 2**62), st.lists(decisions, max_size=30))
def test_encoded_batch_is_the_message_built_field_by_field(
    batch_id: int, batch: list[pb.Decision]
) -> None:
    payloads = [d.SerializeToString() for d in batch]

    encoded = encode_batch(batch_id, payloads)

    assert audit_pb.StreamDecisionsRequest.FromString(encoded) == audit_pb.StreamDecisionsRequest(
        batch_id=batch_id, decisions=batch
    )


@given(st.integers(1, 2**63 - 1))
def test_varint_is_the_one_protobuf_writes(value: int) -> None:
    """(Through an int64 field: the tag byte, then the varint; 0 is not written at all.)"""
    message = audit_pb.StreamDecisionsResponse(batch_id=value)
    assert varint(value) == message.SerializeToString()[1:]


def test_varint_refuses_negative_numbers() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        varint(-1)


def test_records_that_do_not_parse_are_set_aside_in_order() -> None:
    good = [pb.Decision(decision_id=f"{i:032x}", model="m").SerializeToString() for i in range(3)]
    # A length-delimited field whose length runs past the end, and a truncated varint.
    damaged = [b"\x12\x7fshort", b"\x08\xff"]

    checked = check([good[0], damaged[0], good[1], damaged[1], good[2]])

    assert checked.readable == good
    assert checked.unreadable == damaged
