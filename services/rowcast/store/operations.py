"""Long-running operations (materialisations) recorded in HBase, so that any ModelService
replica can report on, watch or cancel an operation another replica runs.

A runner reports progress every half second. One that has not reported for `STALE_AFTER_MS`
(its process was killed, or cannot reach HBase) is dead to everyone else: the first reader
that notices (GetOperation, WatchOperation, CancelOperation, or MaterializeVersion looking for
a running operation) ends the operation ABORTED, in the style of google.longrunning: done,
with an error saying when the runner stopped reporting and that MaterializeVersion resumes
from the watermark.

The end of an operation is final, whoever writes it. It lives in one cell, `o:final` (a JSON
snapshot of the finished record), written only by a Thrift `checkAndPut` that requires the
cell to be absent: the runner finishing and a reader aborting race on that one row-atomic
compare-and-set, and exactly one wins. Everything else a runner writes (progress cells) is
ignored once `o:final` exists, so a runner that comes back after being declared dead (a
stopped process resumed, a long GC pause, HBase reachable again) cannot resurrect its
operation: its progress writes change nothing that is read, its own ending loses the
compare-and-set, and its next report reads the operation as done, which tells it to stop
(`Materializations` then cancels its run at the next chunk boundary, the version staying
MATERIALIZING at its checkpoint for the operation that resumes it).
"""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import happybase
from google.rpc import code_pb2

from rowcast.errors import InvalidArgument, NotFound
from rowcast.store.client import HBaseClient, check_and_put
from rowcast.store.schema import OPERATIONS

PREFIX = "operations/"
#: An operation whose runner has not reported for this long is considered dead: it ends
#: ABORTED and its materialisation can be resumed by a new operation.
STALE_AFTER_MS = 15_000

FINAL_COL = b"o:final"
CANCEL_COL = b"o:cancel"


class OperationState(enum.Enum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    #: The runner stopped reporting (declared dead by a reader).
    ABORTED = "ABORTED"


@dataclass(frozen=True)
class OperationRecord:
    """The state of one materialisation operation."""

    op_id: str
    model: str
    version: int
    state: OperationState
    rows_written: int
    total_rows: int
    rows_per_second: float
    eta_seconds: float
    start_time_ms: int
    update_time_ms: int
    error_code: int = 0
    error_message: str = ""
    cancel_requested: bool = False

    @property
    def name(self) -> str:
        return PREFIX + self.op_id

    @property
    def done(self) -> bool:
        return self.state is not OperationState.RUNNING

    def stale(self, now_ms: int, stale_after_ms: int = STALE_AFTER_MS) -> bool:
        return not self.done and now_ms - self.update_time_ms > stale_after_ms

    def aborted(self, stale_after_ms: int = STALE_AFTER_MS) -> OperationRecord:
        """This (stale) record ended ABORTED, as a reader that found it stale records it."""
        stopped = datetime.fromtimestamp(self.update_time_ms / 1000, UTC)
        return replace(
            self,
            state=OperationState.ABORTED,
            rows_per_second=0.0,
            eta_seconds=0.0,
            error_code=code_pb2.ABORTED,
            error_message=(
                f"the runner stopped reporting at {stopped.isoformat(timespec='seconds')} "
                f"(nothing for over {stale_after_ms / 1000:g} s: its ModelService died or lost "
                f"HBase) after {self.rows_written:,} of {self.total_rows:,} rows; the version "
                "stays MATERIALIZING at its checkpoint: MaterializeVersion resumes from the "
                "watermark"
            ),
        )


def op_id_from_name(name: str) -> str:
    if not name.startswith(PREFIX) or len(name) == len(PREFIX):
        raise InvalidArgument.field(
            "name", f"{name!r} is not an operation name (operations/{{id}})"
        )
    return name[len(PREFIX) :]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _progress_cells(r: OperationRecord) -> dict[bytes, bytes]:
    return {
        b"o:rows": str(r.rows_written).encode(),
        b"o:rate": repr(r.rows_per_second).encode(),
        b"o:eta": repr(r.eta_seconds).encode(),
        b"o:update": str(r.update_time_ms).encode(),
    }


def record_cells(r: OperationRecord) -> dict[bytes, bytes]:
    """The cells of an operation row (what `record_from_row` reads back)."""
    return {
        b"o:model": r.model.encode(),
        b"o:version": str(r.version).encode(),
        b"o:state": r.state.value.encode(),
        b"o:total": str(r.total_rows).encode(),
        b"o:start": str(r.start_time_ms).encode(),
        b"o:err_code": str(r.error_code).encode(),
        b"o:err_msg": r.error_message.encode(),
        **_progress_cells(r),
    }


def final_value(r: OperationRecord) -> bytes:
    """The `o:final` cell of a finished record: everything that may change, as JSON."""
    return json.dumps(
        {
            "state": r.state.value,
            "rows": r.rows_written,
            "rate": r.rows_per_second,
            "eta": r.eta_seconds,
            "update": r.update_time_ms,
            "code": r.error_code,
            "message": r.error_message,
        },
        sort_keys=True,
    ).encode()


def record_from_row(op_id: str, row: dict[bytes, bytes]) -> OperationRecord:
    """The record a row holds; its `o:final` cell, when present, overrides the progress cells."""
    record = OperationRecord(
        op_id=op_id,
        model=row[b"o:model"].decode(),
        version=int(row[b"o:version"]),
        state=OperationState(row[b"o:state"].decode()),
        rows_written=int(row[b"o:rows"]),
        total_rows=int(row[b"o:total"]),
        rows_per_second=float(row[b"o:rate"]),
        eta_seconds=float(row[b"o:eta"]),
        start_time_ms=int(row[b"o:start"]),
        update_time_ms=int(row[b"o:update"]),
        error_code=int(row.get(b"o:err_code", b"0")),
        error_message=row.get(b"o:err_msg", b"").decode(),
        cancel_requested=row.get(CANCEL_COL) == b"1",
    )
    if FINAL_COL not in row:
        # Rows written before `o:final` existed ended by rewriting `o:state`; those are read
        # as they are.
        return record
    final: dict[str, Any] = json.loads(row[FINAL_COL])
    return replace(
        record,
        state=OperationState(final["state"]),
        rows_written=int(final["rows"]),
        rows_per_second=float(final["rate"]),
        eta_seconds=float(final["eta"]),
        update_time_ms=int(final["update"]),
        error_code=int(final["code"]),
        error_message=str(final["message"]),
    )


class OperationStore:
    """Creates operation rows, records progress, ends operations exactly once (the runner, or
    a reader finding the runner dead), and records cancellation requests."""

    def __init__(self, client: HBaseClient, stale_after_ms: int = STALE_AFTER_MS) -> None:
        self._client = client
        self._stale_after_ms = stale_after_ms

    def _row(self, conn: happybase.Connection, op_id: str) -> dict[bytes, bytes]:
        row: dict[bytes, bytes] = conn.table(OPERATIONS).row(op_id.encode())
        if b"o:state" not in row:
            raise NotFound(f"operation {PREFIX}{op_id} not found")
        return row

    def _end(self, conn: happybase.Connection, record: OperationRecord) -> OperationRecord:
        """Write `record` (done) as the operation's end unless it already ended; return the end
        that holds: this one, or the one written first."""
        key = record.op_id.encode()
        if check_and_put(conn, OPERATIONS, key, FINAL_COL, b"", final_value(record)):
            # For people reading the row in the HBase shell; `o:final` is what counts.
            conn.table(OPERATIONS).put(key, record_cells(record))
            return record
        return record_from_row(record.op_id, self._row(conn, record.op_id))

    def _resolved(self, conn: happybase.Connection, record: OperationRecord) -> OperationRecord:
        """The record as everyone must see it: a stale RUNNING one is ended ABORTED first."""
        if record.stale(_now_ms(), self._stale_after_ms):
            return self._end(conn, record.aborted(self._stale_after_ms))
        return record

    async def create(self, record: OperationRecord, *, timeout_s: float) -> OperationRecord:
        """Write a new RUNNING operation; its update time is now."""
        record = replace(record, update_time_ms=_now_ms())

        def work(conn: happybase.Connection) -> None:
            conn.table(OPERATIONS).put(record.op_id.encode(), record_cells(record))

        await self._client.run(work, timeout_s=timeout_s)
        return record

    async def report(self, record: OperationRecord, *, timeout_s: float) -> OperationRecord:
        """The runner's progress report; returns the operation as others now see it (done if it
        was declared dead meanwhile, `cancel_requested` if someone asked it to stop)."""
        record = replace(record, update_time_ms=_now_ms())

        def work(conn: happybase.Connection) -> OperationRecord:
            table = conn.table(OPERATIONS)
            # Progress cells only, never `o:state`: once the operation has ended they are
            # overridden by `o:final` anyway.
            table.put(record.op_id.encode(), _progress_cells(record))
            return self._resolved(
                conn, record_from_row(record.op_id, self._row(conn, record.op_id))
            )

        return await self._client.run(work, timeout_s=timeout_s)

    async def finish(self, record: OperationRecord, *, timeout_s: float) -> OperationRecord:
        """End the operation with `record` (a done state) unless it already ended (a reader
        declared the runner dead first); returns the end that holds."""
        if not record.done:
            raise ValueError(f"finish needs a done state, got {record.state.value}")
        record = replace(record, update_time_ms=_now_ms())

        def work(conn: happybase.Connection) -> OperationRecord:
            # A retry after a lost answer is safe: the compare-and-set then finds our own end.
            return self._end(conn, record)

        return await self._client.run(work, timeout_s=timeout_s)

    async def get(self, op_id: str, *, timeout_s: float) -> OperationRecord:
        def work(conn: happybase.Connection) -> OperationRecord:
            return self._resolved(conn, record_from_row(op_id, self._row(conn, op_id)))

        return await self._client.run(work, timeout_s=timeout_s)

    async def request_cancel(self, op_id: str, *, timeout_s: float) -> OperationRecord:
        def work(conn: happybase.Connection) -> OperationRecord:
            row = self._row(conn, op_id)
            record = self._resolved(conn, record_from_row(op_id, row))
            if record.done:
                return record
            conn.table(OPERATIONS).put(op_id.encode(), {CANCEL_COL: b"1"})
            return replace(record, cancel_requested=True)

        return await self._client.run(work, timeout_s=timeout_s)
