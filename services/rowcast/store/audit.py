"""The audit tables: one row per decision (keyed by its id) and the indexes that find them.

A decision is written once. `record` reads the batch's existing rows first (one multi-get):
an id not stored yet is written; one stored with the same content (core/chain.py
`same_record`, chain link included) is a replay and changes nothing; one stored with other
content is a conflict, refused, and none of its cells or index rows is written. Every cell of
a decision, its index rows included, carries the decision's own time as its HBase timestamp,
so a replay that does re-put the index rows (to repair a crash between the record and its
index rows) lands on the same cells: never a duplicate.

The check and the write are not one atomic step (Thrift1 has no check-and-put over a batch):
two writers of one *new* id at the same moment may both find it absent and both write, and
HBase keeps, cell by cell, whichever came last. Decision ids are minted by one prediction
server each (48-bit time + 80 random bits), so the second writer can only be a forger racing
it; whatever mix survives does not carry a valid chain tag, and `rowcast audit verify` reports
the record as changed.

An augmentation is one cell in the `g` family, qualified by its own id, so history is kept;
the `audit_augmented` index holds each augmented decision's latest state.
Index layouts: rowcast.core.keys.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections import Counter
from collections.abc import Iterator, Sequence

import happybase

from rowcast.core import keys as ik
from rowcast.core.chain import same_record
from rowcast.core.keys import (
    AUDIT_CELL_TS_MS,
    DECISION_ID_BYTES,
    audit_key,
    cell_timestamp,
    subject_index_key,
    subject_prefix,
)
from rowcast.core.query import DecisionQuery, Index
from rowcast.core.records import (
    Augmentation,
    AugmentationSource,
    AugmentationState,
    ChainLink,
    Decision,
    RecordResult,
    Source,
    VersionCount,
)
from rowcast.errors import DecisionNotFound, InvalidArgument
from rowcast.store.client import HBaseClient
from rowcast.store.schema import (
    AUDIT,
    AUDIT_AUGMENTED,
    AUDIT_BY_KEY,
    AUDIT_BY_SUBJECT,
    AUDIT_BY_VERSION,
    AUDIT_SALT_BUCKETS,
)

_INDEX_COL = b"i:d"
_CHAIN_COL = b"d:chain"
#: The decision's own cells (the `d` family: everything but its augmentations).
_DECISION_FAMILY = b"d"
_STATE_COL = b"i:s"
#: Server-side filter for counting: row keys only, one cell per row.
_KEYS_ONLY = "KeyOnlyFilter() AND FirstKeyOnlyFilter()"
_COUNT_BATCH = 5000


def _decision_cells(d: Decision) -> dict[bytes, bytes]:
    cells = {
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
    if d.chain is not None:
        cells[_CHAIN_COL] = json.dumps([d.chain.chain_id, d.chain.sequence, d.chain.tag]).encode()
    return cells


def _augmentation_cell(a: Augmentation, request_id: str = "") -> tuple[bytes, bytes]:
    """The column and value of an augmentation. With a request id the column is derived from
    it (so a retry finds its first write); otherwise from the augmentation's own id."""
    if request_id:
        col = b"g:r" + hashlib.sha256(request_id.encode()).hexdigest()[:32].encode()
    else:
        col = b"g:" + a.augmentation_id.encode()
    payload = {
        "id": a.augmentation_id,
        "better_output": a.better_output,
        "source": a.source.value,
        "actor": a.actor,
        "reason": a.reason,
        "state": a.state.value,
        "time": a.create_time_ms,
    }
    if a.reviewed_augmentation_id:
        payload["reviewed"] = a.reviewed_augmentation_id
    return col, json.dumps(payload).encode()


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
                reviewed_augmentation_id=p.get("reviewed", ""),
            )
            for col, raw in row.items()
            if col.startswith(b"g:")
            for p in [json.loads(raw)]
        ),
        key=lambda a: (a.create_time_ms, a.augmentation_id),
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
        chain=_chain_from_cell(row.get(_CHAIN_COL)),
    )


def _chain_from_cell(raw: bytes | None) -> ChainLink | None:
    if raw is None:
        return None
    chain_id, sequence, tag = json.loads(raw)
    return ChainLink(str(chain_id), int(sequence), str(tag))


def _stored_or_none(row: dict[bytes, bytes]) -> Decision | None:
    """The decision a stored row holds; None when the row cannot be read as one (a cell
    changed behind rowcast's back): never the same record as anything sent."""
    try:
        return _decision_from_row(row)
    except (KeyError, ValueError, TypeError):
        return None


def _index_rows(d: Decision) -> Iterator[tuple[str, bytes]]:
    """(table, row key) of every index row of a decision."""
    if d.subject:
        yield AUDIT_BY_SUBJECT, subject_index_key(d.subject, d.decision_id, AUDIT_SALT_BUCKETS)
    yield (
        AUDIT_BY_VERSION,
        ik.version_index_key(d.model, d.model_version, d.decision_id, AUDIT_SALT_BUCKETS),
    )
    if d.key_hex:
        key = bytes.fromhex(d.key_hex)
        yield AUDIT_BY_KEY, ik.input_key_index_key(d.model, key, d.decision_id, AUDIT_SALT_BUCKETS)


def _sorted_out(
    conn: happybase.Connection, decisions: Sequence[Decision]
) -> tuple[list[Decision], list[Decision], list[tuple[int, str]]]:
    """(new, replayed, conflicts as (position, id)) of a batch, by one multi-get of the rows
    already stored. A decision repeated within the batch is compared with its first copy."""
    keys = list({audit_key(d.decision_id, AUDIT_SALT_BUCKETS) for d in decisions})
    # rows() answers only the rows that exist, in no promised order: match them by key.
    rows = dict(conn.table(AUDIT).rows(keys, columns=[_DECISION_FAMILY])) if keys else {}
    stored: dict[str, Decision | None] = {}
    for d in decisions:
        row = rows.get(audit_key(d.decision_id, AUDIT_SALT_BUCKETS))
        if row and d.decision_id not in stored:
            stored[d.decision_id] = _stored_or_none(row)
    new: list[Decision] = []
    replayed: list[Decision] = []
    conflicts: list[tuple[int, str]] = []
    for i, d in enumerate(decisions):
        if d.decision_id not in stored:
            stored[d.decision_id] = d
            new.append(d)
            continue
        first = stored[d.decision_id]
        if first is not None and same_record(first, d):
            replayed.append(d)
        else:
            conflicts.append((i, d.decision_id))
    return new, replayed, conflicts


class AuditStore:
    """Writes decisions and augmentations; reads them by id, lists and counts them."""

    def __init__(self, client: HBaseClient, cell_ts_ms: int = AUDIT_CELL_TS_MS) -> None:
        """`cell_ts_ms`: granularity of decision cells' timestamps (a parameter only so that
        the benchmark can measure the per-millisecond baseline)."""
        self._client = client
        self._cell_ts_ms = cell_ts_ms

    async def record(
        self, decisions: Sequence[Decision], *, timeout_s: float, all_or_nothing: bool = False
    ) -> RecordResult:
        """Store each decision once: new ids are written, replays change nothing, conflicts
        (an id stored with other content) are refused. With `all_or_nothing`, one conflict
        refuses the whole batch: nothing is written.

        Decision rows are written before their index rows, so an index never points at a row
        that a crash left unwritten; a replay re-puts its index rows (the same cells), which
        repairs such a crash. Every cell's timestamp is its decision's time, truncated to
        `cell_ts_ms` (a minute), so TTL-based retention sees the decision's age. Thrift1 gives
        one timestamp to a whole batch, so a batch costs one call per distinct timestamp per
        table: truncation makes that one or two, where exact milliseconds made it one per
        decision (measured: bench/audit_write.py)."""
        step = self._cell_ts_ms

        def work(conn: happybase.Connection) -> RecordResult:
            new, replayed, conflicts = _sorted_out(conn, decisions)
            if conflicts and all_or_nothing:
                return RecordResult(0, 0, tuple(conflicts))
            by_time: dict[int, list[Decision]] = {}
            for d in new:
                by_time.setdefault(cell_timestamp(d.decide_time_ms, step), []).append(d)
            for ts, group in by_time.items():
                with conn.table(AUDIT).batch(timestamp=ts) as batch:
                    for d in group:
                        batch.put(audit_key(d.decision_id, AUDIT_SALT_BUCKETS), _decision_cells(d))
            index: dict[tuple[str, int], list[bytes]] = {}
            for d in [*new, *replayed]:
                ts = cell_timestamp(d.decide_time_ms, step)
                for table, key in _index_rows(d):
                    index.setdefault((table, ts), []).append(key)
            for (table, ts), keys in index.items():
                with conn.table(table).batch(timestamp=ts) as batch:
                    for key in keys:
                        batch.put(key, {_INDEX_COL: b""})
            return RecordResult(len(new), len(replayed), tuple(conflicts))

        return await self._client.run(work, timeout_s=timeout_s)

    async def scan(
        self, *, start_ms: int | None, timeout_s: float
    ) -> tuple[list[Decision], list[str]]:
        """Every stored decision (its own cells, not its augmentations) with an id at or after
        `start_ms` (None: all), in no particular order, and the ids of rows that cannot be
        read as a decision (a cell changed or deleted behind rowcast's back): what `rowcast
        audit verify` walks. One scan per salt bucket, one call for them all (`timeout_s`
        should be generous: the cost grows with the table)."""
        lo = ik.id_floor(start_ms) if start_ms is not None else b""

        def work(conn: happybase.Connection) -> tuple[list[Decision], list[str]]:
            decisions: list[Decision] = []
            unreadable: list[str] = []
            table = conn.table(AUDIT)
            for bucket in range(AUDIT_SALT_BUCKETS):
                for key, row in table.scan(
                    row_start=bytes([bucket]) + lo,
                    row_stop=bytes([bucket + 1]),
                    columns=[_DECISION_FAMILY],
                    batch_size=_COUNT_BATCH,
                ):
                    d = _stored_or_none(row)
                    if d is None:
                        unreadable.append(key[1:].hex())
                    else:
                        decisions.append(d)
            return decisions, unreadable

        return await self._client.run(work, timeout_s=timeout_s)

    async def get(self, decision_id: str, *, timeout_s: float) -> Decision:
        key = _checked_audit_key(decision_id)

        def work(conn: happybase.Connection) -> Decision:
            row = conn.table(AUDIT).row(key)
            if b"d:id" not in row:
                raise DecisionNotFound(f"decision {decision_id!r} not found")
            return _decision_from_row(row)

        return await self._client.run(work, timeout_s=timeout_s)

    async def list_decisions(
        self, query: DecisionQuery, page_size: int, page_token: str, *, timeout_s: float
    ) -> tuple[list[Decision], str]:
        """One page of the selected decisions, newest first, and the next page's token."""
        lo = ik.id_floor(query.start_ms) if query.start_ms is not None else None
        hi = ik.id_floor(query.end_ms) if query.end_ms is not None else None
        after = query.after(page_token)
        if after is not None:
            hi = after if hi is None else min(hi, after)

        def work(conn: happybase.Connection) -> tuple[list[Decision], str]:
            if query.index is Index.TIME:
                rows = _newest_rows(conn, lo, hi, page_size + 1)
                decisions = [_decision_from_row(row) for row in rows]
            else:
                ids = _newest_ids(conn, _index_ranges(query, lo, hi), query.index, page_size + 1)
                decisions = _fetch(conn, ids)
            more = len(decisions) > page_size
            decisions = decisions[:page_size]
            token = query.page_token(decisions[-1].decision_id) if more and decisions else ""
            return decisions, token

        return await self._client.run(work, timeout_s=timeout_s)

    async def count(self, model: str, *, timeout_s: float) -> list[VersionCount]:
        """Decisions of model per version (newest first) and per latest augmentation state.

        Exact, by key-only scans of the version and augmented indexes: the cost grows with
        the model's decisions (see docs/audit.md), counters could not be made idempotent.
        """

        def work(conn: happybase.Connection) -> list[VersionCount]:
            totals: Counter[int] = Counter()
            for bucket in range(AUDIT_SALT_BUCKETS):
                prefix = ik.version_prefix(bucket, model)
                for key, _ in conn.table(AUDIT_BY_VERSION).scan(
                    row_prefix=prefix, filter=_KEYS_ONLY, batch_size=_COUNT_BATCH
                ):
                    totals[ik.version_of_index_key(key, model)] += 1
            states: dict[int, Counter[AugmentationState]] = {}
            for bucket in range(AUDIT_SALT_BUCKETS):
                prefix = ik.version_prefix(bucket, model)
                for key, data in conn.table(AUDIT_AUGMENTED).scan(
                    row_prefix=prefix, columns=[_STATE_COL], batch_size=_COUNT_BATCH
                ):
                    version = ik.version_of_index_key(key, model)
                    state = AugmentationState(data[_STATE_COL].decode())
                    states.setdefault(version, Counter())[state] += 1
            return [
                VersionCount(v, totals[v], dict(states.get(v, {})))
                for v in sorted(set(totals) | set(states), reverse=True)
            ]

        return await self._client.run(work, timeout_s=timeout_s)

    async def augment(
        self,
        decision_id: str,
        augmentation: Augmentation,
        *,
        timeout_s: float,
        request_id: str = "",
    ) -> tuple[Decision, bool]:
        """Record an augmentation; (the decision as stored, replayed). With `request_id`, an
        augmentation already recorded under it is not written again (replayed = True)."""
        key = _checked_audit_key(decision_id)
        col, value = _augmentation_cell(augmentation, request_id)

        def work(conn: happybase.Connection) -> tuple[Decision, bool]:
            table = conn.table(AUDIT)
            head = table.row(key, columns=[b"d:id", b"d:model", b"d:version", col])
            if b"d:id" not in head:
                raise DecisionNotFound(f"decision {decision_id!r} not found")
            if col in head:
                return _decision_from_row(table.row(key)), True
            ts = augmentation.create_time_ms
            table.put(key, {col: value}, timestamp=ts)
            # The index cell keeps one version: the newest augmentation's state wins.
            index_key = ik.version_index_key(
                head[b"d:model"].decode(), int(head[b"d:version"]), decision_id, AUDIT_SALT_BUCKETS
            )
            conn.table(AUDIT_AUGMENTED).put(
                index_key, {_STATE_COL: augmentation.state.value.encode()}, timestamp=ts
            )
            return _decision_from_row(table.row(key)), False

        return await self._client.run(work, timeout_s=timeout_s)


def _index_ranges(
    query: DecisionQuery, lo: bytes | None, hi: bytes | None
) -> list[tuple[str, bytes, bytes]]:
    """(table, start, stop) forward scans whose merged rows are the selection."""
    if query.index is Index.SUBJECT:
        prefix = subject_prefix(query.subject, AUDIT_SALT_BUCKETS)
        return [(AUDIT_BY_SUBJECT, *ik.forward_range(prefix, lo, hi))]
    if query.index is Index.INPUT_KEY:
        prefix = ik.input_key_prefix(query.model, query.key, AUDIT_SALT_BUCKETS)
        return [(AUDIT_BY_KEY, *ik.forward_range(prefix, lo, hi))]
    return [
        (
            AUDIT_BY_VERSION,
            *ik.forward_range(ik.version_prefix(b, query.model, query.version), lo, hi),
        )
        for b in range(AUDIT_SALT_BUCKETS)
    ]


def _newest_ids(
    conn: happybase.Connection, ranges: list[tuple[str, bytes, bytes]], index: Index, limit: int
) -> list[str]:
    """The newest `limit` decision ids over several index ranges (each newest first)."""
    per_range = [
        [
            key[-DECISION_ID_BYTES:]
            for key, _ in conn.table(table).scan(
                row_start=start, row_stop=stop, filter=_KEYS_ONLY, limit=limit, batch_size=limit
            )
        ]
        for table, start, stop in ranges
    ]
    # Inverted ids ascend where ids descend: merging ascending inverted ids is newest first.
    merged = heapq.merge(*per_range)
    return [ik.invert(inv).hex() for inv, _ in zip(merged, range(limit), strict=False)]


def _newest_rows(
    conn: happybase.Connection, lo: bytes | None, hi: bytes | None, limit: int
) -> list[dict[bytes, bytes]]:
    """The newest `limit` decision rows with ids in [lo, hi), by reverse scans of every salt
    bucket of the audit table merged."""
    per_bucket: list[list[dict[bytes, bytes]]] = []
    for bucket in range(AUDIT_SALT_BUCKETS):
        bounds = ik.reverse_range(bucket, lo, hi)
        if bounds is None:
            continue
        start, stop = bounds
        per_bucket.append(
            [
                row
                for _, row in conn.table(AUDIT).scan(
                    row_start=start, row_stop=stop, reverse=True, limit=limit, batch_size=limit
                )
                if b"d:id" in row
            ]
        )
    merged = heapq.merge(*per_bucket, key=_newest_first)
    return [row for row, _ in zip(merged, range(limit), strict=False)]


def _newest_first(row: dict[bytes, bytes]) -> bytes:
    return ik.invert(bytes.fromhex(row[b"d:id"].decode()))


def _fetch(conn: happybase.Connection, ids: list[str]) -> list[Decision]:
    """Decisions by id, in the order given; ids without a row (yet) are skipped."""
    keys = [audit_key(i, AUDIT_SALT_BUCKETS) for i in ids]
    rows = dict(conn.table(AUDIT).rows(keys)) if keys else {}
    return [_decision_from_row(rows[k]) for k in keys if k in rows and b"d:id" in rows[k]]


def _checked_audit_key(decision_id: str) -> bytes:
    try:
        return audit_key(decision_id, AUDIT_SALT_BUCKETS)
    except ValueError as exc:
        raise InvalidArgument.field(
            "decision_id", f"{decision_id!r} is not a decision id (32 hex digits)"
        ) from exc
