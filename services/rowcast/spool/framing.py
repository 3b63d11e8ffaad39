"""Byte layout of spool segment files: a header, then length-prefixed, CRC-checked records.

Segment file::

    magic b"RCSPOOL1" (8 bytes)
    record*  where record = length (uint32 BE) | crc (uint32 BE) | payload (length bytes)

The CRC (CRC-32, as zlib) covers the length field and the payload, so a run of zero bytes (what
a file system may leave at the end of a file after a machine crash) is never a valid record:
the length must be at least 1, and crc32 of a zero length field is not zero. Scanning stops at
the first frame that is incomplete or does not check; everything from there on is the damaged
tail (`Scan.damage` says why).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

MAGIC = b"RCSPOOL1"
HEADER_BYTES = len(MAGIC)
_FRAME = struct.Struct(">II")
FRAME_OVERHEAD = _FRAME.size
#: A decision record is a few hundred bytes; anything longer is a corrupt length field.
MAX_RECORD_BYTES = 1 << 22


@dataclass(frozen=True, order=True)
class Position:
    """A place in a spool: segment number and byte offset inside that segment file."""

    segment: int
    offset: int


def encode_frame(payload: bytes) -> bytes:
    """One record, framed: length, CRC over length and payload, payload."""
    if not 1 <= len(payload) <= MAX_RECORD_BYTES:
        raise ValueError(f"a spool record is 1..{MAX_RECORD_BYTES} bytes, got {len(payload)}")
    length = struct.pack(">I", len(payload))
    return length + struct.pack(">I", zlib.crc32(payload, zlib.crc32(length))) + payload


def encode_frames(payloads: Iterable[bytes]) -> bytes:
    return b"".join(encode_frame(p) for p in payloads)


@dataclass(frozen=True)
class Scan:
    """The valid records at the start of a buffer and where they end.

    `end` is the offset (relative to the buffer) just past the last valid record. `damage` is
    None when the buffer ends exactly there (or, when scanning a growing file, with an
    incomplete frame that may still be being written); otherwise it says why the bytes from
    `end` on are not valid records.
    """

    payloads: list[bytes]
    end: int
    damage: str | None


def scan_frames(buf: bytes | memoryview, *, complete: bool, max_records: int = -1) -> Scan:
    """Decode frames from the start of buf.

    With complete=True the buffer is the whole rest of a file, so an incomplete final frame is
    damage (a truncated record); with complete=False it is just not there yet. max_records < 0
    means no limit.
    """
    view = memoryview(buf)
    payloads: list[bytes] = []
    pos = 0
    size = len(view)
    while max_records < 0 or len(payloads) < max_records:
        if pos == size:
            return Scan(payloads, pos, None)
        if size - pos < FRAME_OVERHEAD:
            return Scan(payloads, pos, "truncated record header" if complete else None)
        length, crc = _FRAME.unpack_from(view, pos)
        if not 1 <= length <= MAX_RECORD_BYTES:
            return Scan(payloads, pos, f"bad record length {length}")
        start = pos + FRAME_OVERHEAD
        if size - start < length:
            return Scan(payloads, pos, "truncated record" if complete else None)
        payload = bytes(view[start : start + length])
        if zlib.crc32(payload, zlib.crc32(view[pos : pos + 4])) != crc:
            return Scan(payloads, pos, "record checksum mismatch")
        payloads.append(payload)
        pos = start + length
    return Scan(payloads, pos, None)
