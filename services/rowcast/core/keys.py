"""Byte layouts: the one module that knows how rows and cells are encoded in HBase.

Prediction row key (per version table)::

    salt (1 byte) | bin[0] (uint16 BE) | bin[1] (uint16 BE) | ...

The salt is `crc32(bins) % buckets`: it spreads neighbouring grid cells evenly over the
table's pre-split regions, and any language can compute it (CRC-32/ISO-HDLC, as zlib).
Values are written the way HBase's Java `Bytes.toBytes(double|long)` writes them (8 bytes,
big-endian), so Java and Spark readers decode them natively.

Audit row key: salt (1 byte, crc32 of the id) | decision id (16 bytes).
Subject index row key: salt (crc32 of subject) | subject UTF-8 | 0x00 | ~decision id (so a
prefix scan returns the newest decision first). The other audit indexes are described below.

Registry rows: version rows `model | 0x00 | ~version` and activation-history rows
`model | 0x00 | ~time` (both newest first).
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections.abc import Iterable, Sequence
from typing import Final

import numpy as np

BIN_WIDTH = 2
_BIN = struct.Struct(">H")
_DOUBLE = struct.Struct(">d")
_LONG = struct.Struct(">q")
DECISION_ID_BYTES = 16


def salt(payload: bytes, buckets: int) -> int:
    """The salt byte for a payload: CRC-32 modulo the number of buckets (1..256)."""
    if not 1 <= buckets <= 256:
        raise ValueError(f"salt buckets must be 1..256, got {buckets}")
    return zlib.crc32(payload) % buckets


def split_keys(buckets: int) -> list[bytes]:
    """Region boundaries that give each salt bucket its own region."""
    return [bytes([i]) for i in range(1, buckets)]


#: A version table smaller than this per region is not worth more regions (each one costs a
#: memstore and region-server bookkeeping): small grids share regions.
MIN_REGION_BYTES = 16 << 20
#: A region stays below this while a version is written (far under HBase's 10 GB split size,
#: so regions never split during a materialisation): large grids split salt buckets further.
MAX_REGION_BYTES = 1 << 30


def estimated_row_bytes(features: int) -> int:
    """HBase bytes of one prediction row: two cells (output, version) of 8-byte values, each
    a KeyValue carrying the key, family, qualifier, timestamp, type and lengths."""
    key = 1 + BIN_WIDTH * features
    return 2 * (key + 31)


def prediction_split_keys(
    buckets: int, first_feature_bins: int, rows: int, row_bytes: int
) -> list[bytes]:
    """Region boundaries for a version table of `rows` rows, sized for it.

    Up to `buckets * MAX_REGION_BYTES`, one region per `MIN_REGION_BYTES` (at least 1, at
    most one per salt bucket), boundaries on salt buckets spread evenly. Beyond that every
    salt bucket is split further on its first feature's bins, so that no region exceeds
    MAX_REGION_BYTES (as far as the first feature has bins to split on)."""
    total = rows * row_bytes
    if total <= buckets * MAX_REGION_BYTES:
        regions = min(max(-(-total // MIN_REGION_BYTES), 1), buckets)
        return [bytes([i * buckets // regions]) for i in range(1, regions)]
    per_bucket = min(-(-total // (buckets * MAX_REGION_BYTES)), first_feature_bins)
    keys: list[bytes] = []
    for bucket in range(buckets):
        if bucket:
            keys.append(bytes([bucket]))
        keys.extend(
            bytes([bucket]) + _BIN.pack(j * first_feature_bins // per_bucket)
            for j in range(1, per_bucket)
        )
    return keys


def encode_bins(bins: Sequence[int]) -> bytes:
    """The bins as fixed-width big-endian integers (struct caches the compiled format)."""
    return struct.pack(f">{len(bins)}H", *bins)


def decode_bins(payload: bytes) -> tuple[int, ...]:
    if len(payload) % BIN_WIDTH:
        raise ValueError(f"bin payload length {len(payload)} is not a multiple of {BIN_WIDTH}")
    return tuple(v for (v,) in _BIN.iter_unpack(payload))


def prediction_key(bins: Sequence[int], buckets: int) -> bytes:
    """The row key of a grid cell: salt byte then the fixed-width bin indices."""
    payload = struct.pack(f">{len(bins)}H", *bins)
    return bytes((salt(payload, buckets),)) + payload


def salt_ranges(buckets: int) -> list[tuple[bytes, bytes | None]]:
    """Key ranges [start, stop), one per salt bucket, that together cover every prediction key
    (b"" start and None stop mean the table's ends)."""
    bounds = [b"", *split_keys(buckets)]
    return [(lo, bounds[i + 1] if i + 1 < len(bounds) else None) for i, lo in enumerate(bounds)]


# --- The same layout for a whole chunk of grid cells at once (materialisation). ----------


def _crc32_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table[i] = c
    return table


_CRC_TABLE: Final = _crc32_table()


def crc32_rows(data: np.ndarray) -> np.ndarray:
    """zlib.crc32 of every row of a (rows, width) uint8 matrix, vectorised over rows.

    A Python loop of zlib.crc32 costs more per row than scoring the row; this costs one
    table lookup per byte column for the whole chunk.
    """
    crc = np.full(data.shape[0], 0xFFFFFFFF, dtype=np.uint32)
    for column in range(data.shape[1]):
        crc = _CRC_TABLE[(crc ^ data[:, column]) & 0xFF] ^ (crc >> 8)
    return crc ^ np.uint32(0xFFFFFFFF)


def key_matrix(bins: np.ndarray, buckets: int) -> np.ndarray:
    """Row keys of grid cells as a (rows, 1 + 2 * features) uint8 matrix.

    Same layout as `prediction_key` (salt byte = crc32 of the big-endian
    uint16 bins modulo buckets, then the bins), computed for a whole chunk at once; a test
    checks the two agree.
    """
    if not 1 <= buckets <= 256:
        raise ValueError(f"salt buckets must be 1..256, got {buckets}")
    payload = np.ascontiguousarray(bins.astype(">u2")).view(np.uint8)
    payload = payload.reshape(bins.shape[0], bins.shape[1] * BIN_WIDTH)
    salts = (crc32_rows(payload) % np.uint32(buckets)).astype(np.uint8)
    return np.column_stack([salts, payload])


def split_rows(matrix: np.ndarray) -> list[bytes]:
    """Each row of a uint8 matrix as bytes (slicing one buffer; no per-row numpy calls)."""
    width = matrix.shape[1]
    buffer = np.ascontiguousarray(matrix).tobytes()
    return [buffer[i : i + width] for i in range(0, len(buffer), width)]


# --- The table digest: what verification compares a scan of the whole table with. --------
#
# digest(table) = sum, modulo 2**64, over every row of h(key || output cell bytes), where h is
# a seeded 64-bit hash (MurmurHash3's 64-bit block mix and finaliser over big-endian 8-byte
# words, zero-padded, the row's length mixed in). A sum of per-row hashes is independent of
# the order rows are written or scanned in (chunks finish out of order; resumed runs rewrite
# theirs), yet, unlike an XOR of CRCs, it depends on which value sits at which key: two values
# swapped between keys, a row lost or added, or one changed byte each change it but with
# probability 2**-64. It guards against faults, not an attacker who can write HBase (who could
# rewrite the registry too). It is vectorised over a chunk's matrix, like `crc32_rows`: hashlib's
# blake2b costs ~1.2 µs a row from Python, more than the rest of a row's work but scoring.

#: The hash's seed (its key): any fixed value; the writer and the scan must share it.
DIGEST_SEED: Final = 0x726F77636173742E  # "rowcast."
_U64 = np.uint64
_C1, _C2 = _U64(0x87C37B91114253D5), _U64(0x4CF5AD432745937F)
_F1, _F2 = _U64(0xFF51AFD7ED558CCD), _U64(0xC4CEB9FE1A85EC53)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << _U64(r)) | (x >> _U64(64 - r))


def _fmix(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> _U64(33))
    h = h * _F1
    h = h ^ (h >> _U64(33))
    h = h * _F2
    out: np.ndarray = h ^ (h >> _U64(33))
    return out


def row_digests(data: np.ndarray) -> np.ndarray:
    """The seeded 64-bit hash of every row of a (rows, width) uint8 matrix."""
    rows, width = data.shape
    words = -(-width // 8)
    padded = np.zeros((rows, words * 8), dtype=np.uint8)
    padded[:, :width] = data
    blocks = padded.view(">u8").astype(np.uint64)
    h = np.full(rows, DIGEST_SEED, dtype=np.uint64)
    for j in range(words):
        k = _rotl(blocks[:, j] * _C1, 31) * _C2
        h = _rotl(h ^ k, 27) * _U64(5) + _U64(0x52DCE729)
    return _fmix(h ^ _U64(width))


def digest_sum(digests: np.ndarray) -> int:
    """Sum of row hashes modulo 2**64."""
    return int(np.sum(digests, dtype=np.uint64)) if digests.size else 0


def add_digests(a: int, b: int) -> int:
    """Two partial digests (of disjoint sets of rows) combined."""
    return (a + b) % 2**64


def chunk_digest(keys: np.ndarray, outputs: np.ndarray) -> int:
    """Digest of a chunk: keys (rows, key width) uint8 and outputs written as big-endian
    doubles, the bytes of their output cells."""
    if keys.shape[0] == 0:
        return 0
    values = np.ascontiguousarray(outputs.astype(">f8")).view(np.uint8).reshape(-1, 8)
    return digest_sum(row_digests(np.column_stack([keys, values])))


def cells_digest(cells: Iterable[tuple[bytes, bytes]]) -> int:
    """Digest of stored (row key, output cell bytes) pairs, as a scan returns them."""
    by_width: dict[int, list[bytes]] = {}
    for key, value in cells:
        row = key + value
        by_width.setdefault(len(row), []).append(row)
    total = 0
    for width, rows in by_width.items():
        data = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), width)
        total = add_digests(total, digest_sum(row_digests(data)))
    return total


def key_bins(key: bytes) -> tuple[int, ...]:
    """The bin indices of a prediction row key (the salt byte dropped)."""
    return decode_bins(key[1:])


def encode_double(value: float) -> bytes:
    return _DOUBLE.pack(value)


def decode_double(raw: bytes) -> float:
    return float(_DOUBLE.unpack(raw)[0])


def encode_long(value: int) -> bytes:
    return _LONG.pack(value)


def decode_long(raw: bytes) -> int:
    return int(_LONG.unpack(raw)[0])


def new_decision_id(now_ms: int | None = None) -> str:
    """A unique, time-ordered decision id: 48-bit milliseconds + 80 random bits, as 32 hex."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return (ms.to_bytes(6, "big") + os.urandom(10)).hex()


def decision_id_bytes(decision_id: str) -> bytes:
    """Parse a decision id; ValueError when it is not 32 hex digits."""
    raw = bytes.fromhex(decision_id)
    if len(raw) != DECISION_ID_BYTES:
        raise ValueError(f"a decision id is {DECISION_ID_BYTES * 2} hex digits")
    return raw


def decision_time_ms(decision_id: str) -> int:
    return int.from_bytes(decision_id_bytes(decision_id)[:6], "big")


#: Granularity of audit cell timestamps: a decision's cells carry its time truncated to this.
AUDIT_CELL_TS_MS = 60_000


def cell_timestamp(time_ms: int, step_ms: int = AUDIT_CELL_TS_MS) -> int:
    """The HBase timestamp of a decision's cells: its time truncated to `step_ms`."""
    return time_ms - time_ms % step_ms


def audit_key(decision_id: str, buckets: int) -> bytes:
    raw = decision_id_bytes(decision_id)
    return bytes([salt(raw, buckets)]) + raw


def subject_prefix(subject: str, buckets: int) -> bytes:
    """The scan prefix of every index row of one subject."""
    encoded = subject.encode()
    return bytes([salt(encoded, buckets)]) + encoded + b"\x00"


def subject_index_key(subject: str, decision_id: str, buckets: int) -> bytes:
    return subject_prefix(subject, buckets) + invert(decision_id_bytes(decision_id))


def version_row(model: str, version: int) -> bytes:
    """Registry row of a model version: versions of one model sort newest first."""
    return model.encode() + b"\x00" + encode_long(2**63 - 1 - version)


def model_prefix(model: str) -> bytes:
    """Scan prefix of every registry row (versions, activations) of one model."""
    return model.encode() + b"\x00"


def activation_key(model: str, time_ms: int) -> bytes:
    """Activation-history row: one model's switches sort newest first."""
    return model_prefix(model) + (2**63 - 1 - time_ms).to_bytes(8, "big")


# --- Audit index tables ------------------------------------------------------------------
# Byte layouts of the audit index tables and of decision-id ranges in them.
#
# Every index row key ends with the *inverted* decision id (255 - byte), so a forward scan of one
# prefix returns the newest decision first; decision ids start with their 48-bit millisecond time,
# so a time range is a key range inside any prefix. The audit table itself is keyed
# salt | decision id (audit_key above) and is scanned in reverse for newest-first time ranges.
#
#     by version:    bucket(id) | model | 0x00 | version (int64 BE) | ~id   (16 buckets a version)
#     by input key:  salt(model, key) | model | 0x00 | len(key) (1 byte) | key | ~id
#     augmented:     bucket(id) | model | 0x00 | version (int64 BE) | ~id     value: latest state
#
# `bucket(id)` is the audit table's own salt, so one version's decisions spread over every
# region (a version takes all the traffic while it is active); reading them back merges one scan
# per bucket. A key's or a subject's decisions are few, so they share one salt and one scan.

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
    return head if version is None else head + _LONG.pack(version)


def version_index_key(model: str, version: int, decision_id: str, buckets: int) -> bytes:
    prefix = version_prefix(id_bucket(decision_id, buckets), model, version)
    return prefix + invert(decision_id_bytes(decision_id))


def version_of_index_key(key: bytes, model: str) -> int:
    """The version in a version (or augmented) index key of model."""
    start = 1 + len(model.encode()) + 1
    return int(_LONG.unpack_from(key, start)[0])


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
