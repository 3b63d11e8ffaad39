"""One StreamDecisions batch, encoded from the spooled records' own bytes.

A spooled record is a serialised `rowcast.v1.Decision`. The batch message
(`StreamDecisionsRequest`: `batch_id = 1`, `repeated Decision decisions = 2`) is, on the wire,
the batch id followed by each record as a length-delimited field 2, so it is built by
concatenation: no record is parsed into a message, copied into the batch and serialised
again (three passes per decision on the prediction server's event loop before this). Each
record is still parsed once, to check it, so that a damaged one is set aside rather than sent
(the AuditService would refuse the whole batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from rowcast.v1 import resources_pb2 as pb

#: Wire tags: field 1 as a varint, field 2 length-delimited ((number << 3) | wire type).
_BATCH_ID_TAG = b"\x08"
_DECISION_TAG = b"\x12"


def varint(value: int) -> bytes:
    """The protobuf base-128 varint of a non-negative int."""
    if value < 0:
        raise ValueError(f"a varint here is non-negative, got {value}")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@dataclass(frozen=True)
class Checked:
    """Spooled records split into those that parse as a Decision and those that do not, each
    in spool order."""

    readable: list[bytes]
    unreadable: list[bytes]


def check(payloads: Sequence[bytes]) -> Checked:
    """Which records parse as a Decision (a record damaged on disk past its frame checksum,
    or written by something else, does not)."""
    readable: list[bytes] = []
    unreadable: list[bytes] = []
    parse = pb.Decision.FromString
    for payload in payloads:
        try:
            parse(payload)
        except DecodeError:
            unreadable.append(payload)
        else:
            readable.append(payload)
    return Checked(readable, unreadable)


def encode_batch(batch_id: int, payloads: Sequence[bytes]) -> bytes:
    """The serialised `StreamDecisionsRequest(batch_id=batch_id, decisions=payloads)`."""
    parts = [_BATCH_ID_TAG, varint(batch_id)] if batch_id else []
    for payload in payloads:
        parts += (_DECISION_TAG, varint(len(payload)), payload)
    return b"".join(parts)
