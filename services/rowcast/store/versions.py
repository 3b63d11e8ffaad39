"""Model versions in HBase: numbers, states, metrics, materialisation claims and watermarks.

Version numbers come from an HBase atomic counter: a retried increment may skip a number but
never hands the same one out twice, which is the promise (numbers are never reused).
"""

from __future__ import annotations

import json

import happybase

from rowcast.core.keys import model_prefix, version_row
from rowcast.core.records import VersionInfo, VersionState
from rowcast.errors import FailedPrecondition, ModelNotFound, VersionNotFound
from rowcast.store.client import HBaseClient, check_and_put
from rowcast.store.registry_rows import (
    NEXT_VERSION_COL,
    SIGNATURE_COL,
    STATE_COL,
    now_ms,
    require_model,
    text,
    version_cells,
    version_from_row,
)
from rowcast.store.schema import MODELS, VERSIONS, prediction_table

OPERATION_COL = b"v:operation"


class VersionStore:
    """Allocates version numbers and records each version's state, metrics and progress."""

    def __init__(self, client: HBaseClient) -> None:
        self._client = client

    async def new_version(self, model: str, creator: str, *, timeout_s: float) -> VersionInfo:
        """Allocate the next version number and record it as REGISTERED."""

        def work(conn: happybase.Connection) -> VersionInfo:
            require_model(conn, model)
            # Not retried: an increment is not idempotent, and a retry could skip a number.
            number = int(conn.table(MODELS).counter_inc(model.encode(), NEXT_VERSION_COL))
            now = now_ms()
            info = VersionInfo(
                model=model,
                version=number,
                state=VersionState.REGISTERED,
                table=prediction_table(model, number),
                row_count=0,
                creator=creator,
                metrics={},
                create_time_ms=now,
                update_time_ms=now,
            )
            conn.table(VERSIONS).put(version_row(model, number), version_cells(info))
            return info

        return await self._client.run(work, timeout_s=timeout_s, retry=False)

    async def update_version(
        self,
        model: str,
        version: int,
        *,
        state: VersionState,
        row_count: int | None = None,
        metrics: dict[str, float] | None = None,
        failure_reason: str | None = None,
        evaluation_dataset: str | None = None,
        timeout_s: float,
    ) -> VersionInfo:
        def work(conn: happybase.Connection) -> VersionInfo:
            table = conn.table(VERSIONS)
            key = version_row(model, version)
            row = table.row(key)
            if not row:
                raise VersionNotFound(f"model {model!r} has no version {version}")
            if row.get(STATE_COL) == VersionState.RETIRED.value.encode():
                raise FailedPrecondition(
                    f"version {version} of {model!r} is RETIRED; a retired version never "
                    "changes again"
                )
            cells: dict[bytes, bytes] = {
                STATE_COL: state.value.encode(),
                b"v:update_time": str(now_ms()).encode(),
            }
            if row_count is not None:
                cells[b"v:row_count"] = str(row_count).encode()
            if metrics is not None:
                cells[b"v:metrics"] = json.dumps(metrics).encode()
            if failure_reason is not None:
                cells[b"v:failure"] = failure_reason.encode()
            if evaluation_dataset is not None:
                cells[b"v:dataset"] = evaluation_dataset.encode()
            table.put(key, cells)
            row.update(cells)
            return version_from_row(row)

        return await self._client.run(work, timeout_s=timeout_s)

    async def get_version(self, model: str, version: int, *, timeout_s: float) -> VersionInfo:
        def work(conn: happybase.Connection) -> VersionInfo:
            row = conn.table(VERSIONS).row(version_row(model, version))
            if not row:
                if SIGNATURE_COL not in conn.table(MODELS).row(model.encode()):
                    raise ModelNotFound(f"model {model!r} is not registered")
                raise VersionNotFound(f"model {model!r} has no version {version}")
            return version_from_row(row)

        return await self._client.run(work, timeout_s=timeout_s)

    async def list_versions(self, model: str, *, timeout_s: float) -> list[VersionInfo]:
        """All versions of a model, newest first (the row key sorts them so)."""

        def work(conn: happybase.Connection) -> list[VersionInfo]:
            require_model(conn, model)
            return [
                version_from_row(row)
                for _, row in conn.table(VERSIONS).scan(row_prefix=model_prefix(model))
            ]

        return await self._client.run(work, timeout_s=timeout_s)

    async def operation_claim(self, model: str, version: int, *, timeout_s: float) -> str:
        """The id of the last materialisation that claimed the version ("" for none)."""

        def work(conn: happybase.Connection) -> str:
            row = conn.table(VERSIONS).row(version_row(model, version), columns=[OPERATION_COL])
            return text(row, OPERATION_COL)

        return await self._client.run(work, timeout_s=timeout_s)

    async def claim_operation(
        self, model: str, version: int, seen: str, op_id: str, *, timeout_s: float
    ) -> bool:
        """Record `op_id` as the version's materialisation if the claim is still `seen` (what
        the caller read before it checked that no operation runs): of two starters that
        checked at the same time, one wins (compare-and-set)."""

        def work(conn: happybase.Connection) -> bool:
            key = version_row(model, version)
            return check_and_put(conn, VERSIONS, key, OPERATION_COL, seen.encode(), op_id.encode())

        return await self._client.run(work, timeout_s=timeout_s, retry=False)

    async def update_progress(
        self, model: str, version: int, rows_done: int, checksum: int, *, timeout_s: float
    ) -> None:
        """Checkpoint the materialisation watermark of a version and the checksum of the cells
        below it, in one row-atomic put (a resume never sees one without the other)."""

        def work(conn: happybase.Connection) -> None:
            conn.table(VERSIONS).put(
                version_row(model, version),
                {
                    b"v:rows_done": str(rows_done).encode(),
                    b"v:checksum_done": str(checksum).encode(),
                },
            )

        await self._client.run(work, timeout_s=timeout_s)
