"""Byte layouts of the audit index tables and of decision-id ranges in them.

Every index row key ends with the *inverted* decision id (255 - byte), so a forward scan of one
prefix returns the newest decision first; decision ids start with their 48-bit millisecond time,
so a time range is a key range inside any prefix. The audit table itself is keyed
salt | decision id (core/keys.py) and is scanned in reverse for newest-first time ranges.

    by version:    bucket(id) | model | 0x00 | version (int64 BE) | ~id     (16 buckets per version)
    by input key:  salt(model, key) | model | 0x00 | len(key) (1 byte) | key | ~id
    augmented:     bucket(id) | model | 0x00 | version (int64 BE) | ~id     value: latest state

`bucket(id)` is the audit table's own salt, so one version's decisions spread over every
region (a version takes all the traffic while it is active); reading them back merges one scan
per bucket. A key's or a subject's decisions are few, so they share one salt and one scan.
"""

from __future__ import annotations

import struct

from rowcast.core.keys import DECISION_ID_BYTES, decision_id_bytes, salt

_VERSION = struct.Struct(">q")
ID_FLOOR_PAD = b"\x00" * (DECISION_ID_BYTES - 6)
#: Above every inverted id: the exclusive end of a forward scan over a whole prefix.
AFTER_ALL_IDS = b"\xff" * DECISION_ID_BYTES + b"\x00"


def invert(raw: bytes) -> bytes:
    return bytes(255 - b for b in raw)


def id_bucket(decision_id: str, buckets: int) -> int:
    return salt(decision_id_bytes(decision_id), buckets)


def version_prefix(bucket: int, model: str, version: int | None = None) -> bytes:
    """Prefix of one version's index rows in one bucket (every version's when version is None)."""
    head = bytes([bucket]) + model.encode() + b"\x00"
    return head if version is None else head + _VERSION.pack(version)


def version_index_key(model: str, version: int, decision_id: str, buckets: int) -> bytes:
    prefix = version_prefix(id_bucket(decision_id, buckets), model, version)
    return prefix + invert(decision_id_bytes(decision_id))


def version_of_index_key(key: bytes, model: str) -> int:
    """The version in a version (or augmented) index key of model."""
    start = 1 + len(model.encode()) + 1
    return int(_VERSION.unpack_from(key, start)[0])


def input_key_prefix(model: str, key: bytes, buckets: int) -> bytes:
    if not 1 <= len(key) <= 255:
        raise ValueError(f"an input key is 1..255 bytes, got {len(key)}")
    body = model.encode() + b"\x00" + bytes([len(key)]) + key
    return bytes([salt(body, buckets)]) + body


def input_key_index_key(model: str, key: bytes, decision_id: str, buckets: int) -> bytes:
    return input_key_prefix(model, key, buckets) + invert(decision_id_bytes(decision_id))


def id_from_index_key(key: bytes) -> str:
    """The decision id at the end of any index row key."""
    return invert(key[-DECISION_ID_BYTES:]).hex()


def id_floor(ms: int) -> bytes:
    """The smallest decision id of millisecond ms."""
    return max(ms, 0).to_bytes(6, "big") + ID_FLOOR_PAD


def forward_range(prefix: bytes, lo: bytes | None, hi: bytes | None) -> tuple[bytes, bytes]:
    """Scan bounds [start, stop) of the index rows under prefix whose ids are in [lo, hi)."""
    start = prefix + invert(hi) + b"\x00" if hi is not None else prefix
    stop = prefix + invert(lo) + b"\x00" if lo is not None else prefix + AFTER_ALL_IDS
    return start, stop


def reverse_range(bucket: int, lo: bytes | None, hi: bytes | None) -> tuple[bytes, bytes] | None:
    """Reverse-scan bounds (start inclusive, stop exclusive) of the audit rows of one salt
    bucket whose ids are in [lo, hi); None when the range is empty."""
    b = bytes([bucket])
    if hi is not None:
        top = int.from_bytes(hi, "big") - 1
        if top < 0:
            return None
        start = b + top.to_bytes(DECISION_ID_BYTES, "big")
    else:
        start = b + b"\xff" * DECISION_ID_BYTES
    if lo is not None and int.from_bytes(lo, "big") > 0:
        stop = b + (int.from_bytes(lo, "big") - 1).to_bytes(DECISION_ID_BYTES, "big")
    else:
        stop = b
    return start, stop
