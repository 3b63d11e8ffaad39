"""The audit tables: one row per decision (keyed by its id) and an index by subject.

Every cell of a decision is written with the decision's own time as its HBase timestamp, so a
replayed write (a retry, a spool replay) lands on the same cells: never a duplicate. An
augmentation is one cell in the `g` family, qualified by its own id, so history is kept.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence

import happybase

from rowcast.core.keys import (
    audit_key,
    decision_id_from_index_key,
    subject_index_key,
    subject_prefix,
)
from rowcast.core.records import (
    Augmentation,
    AugmentationSource,
    AugmentationState,
    Decision,
    Source,
)
from rowcast.errors import DecisionNotFound, InvalidArgument
from rowcast.store.client import HBaseClient
from rowcast.store.schema import AUDIT, AUDIT_BY_SUBJECT, AUDIT_SALT_BUCKETS

_INDEX_COL = b"i:d"


def _decision_cells(d: Decision) -> dict[bytes, bytes]:
    return {
        b"d:id": d.decision_id.encode(),
        b"d:model": d.model.encode(),
        b"d:version": str(d.model_version).encode(),
        b"d:subject": d.subject.encode(),
        b"d:features": json.dumps(d.features, sort_keys=True).encode(),
        b"d:key": d.key_hex.encode(),
        b"d:output": repr(d.output).encode(),
        b"d:source": d.source.value.encode(),
        b"d:time": str(d.decide_time_ms).encode(),
    }


def _augmentation_cell(a: Augmentation) -> tuple[bytes, bytes]:
    payload = {
        "id": a.augmentation_id,
        "better_output": a.better_output,
        "source": a.source.value,
        "actor": a.actor,
        "reason": a.reason,
        "state": a.state.value,
        "time": a.create_time_ms,
    }
    return b"g:" + a.augmentation_id.encode(), json.dumps(payload).encode()


def _decision_from_row(row: dict[bytes, bytes]) -> Decision:
    augmentations = sorted(
        (
            Augmentation(
                augmentation_id=p["id"],
                better_output=float(p["better_output"]),
                source=AugmentationSource(p["source"]),
                actor=p["actor"],
                reason=p["reason"],
                state=AugmentationState(p["state"]),
                create_time_ms=int(p["time"]),
            )
            for col, raw in row.items()
            if col.startswith(b"g:")
            for p in [json.loads(raw)]
        ),
        key=lambda a: a.augmentation_id,
    )
    return Decision(
        decision_id=row[b"d:id"].decode(),
        model=row[b"d:model"].decode(),
        model_version=int(row[b"d:version"]),
        subject=row[b"d:subject"].decode(),
        features=json.loads(row[b"d:features"]),
        key_hex=row[b"d:key"].decode(),
        output=float(row[b"d:output"]),
        source=Source(row[b"d:source"].decode()),
        decide_time_ms=int(row[b"d:time"]),
        augmentations=tuple(augmentations),
    )


def encode_page_token(index_key: bytes) -> str:
    return base64.urlsafe_b64encode(index_key).decode()


def decode_page_token(token: str, prefix: bytes) -> bytes:
    try:
        key = base64.urlsafe_b64decode(token.encode())
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgument.field("page_token", "is not a token this service issued") from exc
    if not key.startswith(prefix):
        raise InvalidArgument.field("page_token", "belongs to another subject or query")
    return key


class AuditStore:
    """Writes decisions and augmentations; reads them by id and by subject."""

    def __init__(self, client: HBaseClient) -> None:
        self._client = client

    async def record(self, decisions: Sequence[Decision], timeout_s: float | None = None) -> int:
        """Store decisions (idempotent); the decision row is written before its index row."""

        def work(conn: happybase.Connection) -> int:
            by_time: dict[int, list[Decision]] = {}
            for d in decisions:
                by_time.setdefault(d.decide_time_ms, []).append(d)
            for ts, group in by_time.items():
                with conn.table(AUDIT).batch(timestamp=ts) as batch:
                    for d in group:
                        batch.put(audit_key(d.decision_id, AUDIT_SALT_BUCKETS), _decision_cells(d))
                with conn.table(AUDIT_BY_SUBJECT).batch(timestamp=ts) as batch:
                    for d in group:
                        if d.subject:
                            key = subject_index_key(d.subject, d.decision_id, AUDIT_SALT_BUCKETS)
                            batch.put(key, {_INDEX_COL: b""})
            return len(decisions)

        return await self._client.run(work, timeout_s=timeout_s)

    async def get(self, decision_id: str, timeout_s: float | None = None) -> Decision:
        key = _checked_audit_key(decision_id)

        def work(conn: happybase.Connection) -> Decision:
            row = conn.table(AUDIT).row(key)
            if b"d:id" not in row:
                raise DecisionNotFound(f"decision {decision_id!r} not found")
            return _decision_from_row(row)

        return await self._client.run(work, timeout_s=timeout_s)

    async def list_by_subject(
        self, subject: str, page_size: int, page_token: str, timeout_s: float | None = None
    ) -> tuple[list[Decision], str]:
        prefix = subject_prefix(subject, AUDIT_SALT_BUCKETS)
        start = decode_page_token(page_token, prefix) + b"\x00" if page_token else prefix
        stop = prefix[:-1] + b"\x01"  # the prefix ends in 0x00: the next prefix ends in 0x01

        def work(conn: happybase.Connection) -> tuple[list[Decision], str]:
            index_keys = [
                key
                for key, _ in conn.table(AUDIT_BY_SUBJECT).scan(
                    row_start=start, row_stop=stop, limit=page_size + 1, batch_size=page_size + 1
                )
            ]
            more = len(index_keys) > page_size
            index_keys = index_keys[:page_size]
            ids = [decision_id_from_index_key(k) for k in index_keys]
            rows = dict(conn.table(AUDIT).rows([audit_key(i, AUDIT_SALT_BUCKETS) for i in ids]))
            decisions = [
                _decision_from_row(rows[k])
                for i in ids
                if (k := audit_key(i, AUDIT_SALT_BUCKETS)) in rows and b"d:id" in rows[k]
            ]
            token = encode_page_token(index_keys[-1]) if more and index_keys else ""
            return decisions, token

        return await self._client.run(work, timeout_s=timeout_s)

    async def augment(
        self, decision_id: str, augmentation: Augmentation, timeout_s: float | None = None
    ) -> Decision:
        key = _checked_audit_key(decision_id)

        def work(conn: happybase.Connection) -> Decision:
            table = conn.table(AUDIT)
            if b"d:id" not in table.row(key, columns=[b"d:id"]):
                raise DecisionNotFound(f"decision {decision_id!r} not found")
            col, value = _augmentation_cell(augmentation)
            table.put(key, {col: value}, timestamp=augmentation.create_time_ms)
            return _decision_from_row(table.row(key))

        return await self._client.run(work, timeout_s=timeout_s)


def _checked_audit_key(decision_id: str) -> bytes:
    try:
        return audit_key(decision_id, AUDIT_SALT_BUCKETS)
    except ValueError as exc:
        raise InvalidArgument.field(
            "decision_id", f"{decision_id!r} is not a decision id (32 hex digits)"
        ) from exc
