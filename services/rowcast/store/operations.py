"""Long-running operations (materialisations) recorded in HBase, so that any ModelService
replica can report on, watch or cancel an operation another replica runs."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, replace

import happybase

from rowcast.errors import InvalidArgument, NotFound
from rowcast.store.client import HBaseClient
from rowcast.store.schema import OPERATIONS

PREFIX = "operations/"
#: An operation whose runner has not reported for this long is considered dead (its
#: materialisation can be resumed by a new operation).
STALE_AFTER_MS = 15_000


class OperationState(enum.Enum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


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

    def stale(self, now_ms: int) -> bool:
        return not self.done and now_ms - self.update_time_ms > STALE_AFTER_MS


def op_id_from_name(name: str) -> str:
    if not name.startswith(PREFIX) or len(name) == len(PREFIX):
        raise InvalidArgument.field(
            "name", f"{name!r} is not an operation name (operations/{{id}})"
        )
    return name[len(PREFIX) :]


def _cells(r: OperationRecord) -> dict[bytes, bytes]:
    return {
        b"o:model": r.model.encode(),
        b"o:version": str(r.version).encode(),
        b"o:state": r.state.value.encode(),
        b"o:rows": str(r.rows_written).encode(),
        b"o:total": str(r.total_rows).encode(),
        b"o:rate": repr(r.rows_per_second).encode(),
        b"o:eta": repr(r.eta_seconds).encode(),
        b"o:start": str(r.start_time_ms).encode(),
        b"o:update": str(r.update_time_ms).encode(),
        b"o:err_code": str(r.error_code).encode(),
        b"o:err_msg": r.error_message.encode(),
    }


def _record(op_id: str, row: dict[bytes, bytes]) -> OperationRecord:
    return OperationRecord(
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
        cancel_requested=row.get(b"o:cancel") == b"1",
    )


class OperationStore:
    """Creates, updates and reads operation rows; records cancellation requests."""

    def __init__(self, client: HBaseClient) -> None:
        self._client = client

    async def save(self, record: OperationRecord) -> OperationRecord:
        record = replace(record, update_time_ms=int(time.time() * 1000))

        def work(conn: happybase.Connection) -> None:
            conn.table(OPERATIONS).put(record.op_id.encode(), _cells(record))

        await self._client.run(work)
        return record

    async def get(self, op_id: str, timeout_s: float | None = None) -> OperationRecord:
        def work(conn: happybase.Connection) -> OperationRecord:
            row = conn.table(OPERATIONS).row(op_id.encode())
            if b"o:state" not in row:
                raise NotFound(f"operation {PREFIX}{op_id} not found")
            return _record(op_id, row)

        return await self._client.run(work, timeout_s=timeout_s)

    async def request_cancel(self, op_id: str, timeout_s: float | None = None) -> OperationRecord:
        def work(conn: happybase.Connection) -> OperationRecord:
            table = conn.table(OPERATIONS)
            row = table.row(op_id.encode())
            if b"o:state" not in row:
                raise NotFound(f"operation {PREFIX}{op_id} not found")
            table.put(op_id.encode(), {b"o:cancel": b"1"})
            row[b"o:cancel"] = b"1"
            return _record(op_id, row)

        return await self._client.run(work, timeout_s=timeout_s)

    async def running_for(self, model: str, version: int) -> OperationRecord | None:
        """A live (not stale) RUNNING operation on this version, if any."""

        def work(conn: happybase.Connection) -> OperationRecord | None:
            now = int(time.time() * 1000)
            for key, row in conn.table(OPERATIONS).scan():
                if b"o:state" not in row:
                    continue
                record = _record(key.decode(), row)
                ours = (record.model, record.version) == (model, version)
                if ours and not record.done and not record.stale(now):
                    return record
            return None

        return await self._client.run(work)
