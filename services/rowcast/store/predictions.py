"""Reads and writes the rows of a version's prediction table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import happybase

from rowcast.core.keys import (
    add_digests,
    cells_digest,
    decode_double,
    decode_long,
    encode_double,
    encode_long,
)
from rowcast.core.records import PredictionRow
from rowcast.store.client import HBaseClient
from rowcast.store.schema import PRED_FAMILY

OUTPUT_COL = f"{PRED_FAMILY}:o".encode()
VERSION_COL = f"{PRED_FAMILY}:v".encode()
_COLUMNS = [OUTPUT_COL, VERSION_COL]
#: Rows fetched per Thrift scanner call when counting.
SCAN_BATCH = 10_000


def _decode(row: dict[bytes, bytes]) -> PredictionRow | None:
    if OUTPUT_COL not in row:
        return None
    return PredictionRow(decode_double(row[OUTPUT_COL]), decode_long(row[VERSION_COL]))


class PredictionStore:
    """Point and multi-get lookups on version tables, and batched writes for materialisation."""

    def __init__(self, client: HBaseClient) -> None:
        self._client = client

    async def get(self, table: str, key: bytes, *, timeout_s: float) -> PredictionRow | None:
        def work(conn: happybase.Connection) -> PredictionRow | None:
            return _decode(conn.table(table).row(key, columns=_COLUMNS))

        return await self._client.run(work, timeout_s=timeout_s)

    async def get_many(
        self, table: str, keys: Sequence[bytes], *, timeout_s: float
    ) -> dict[bytes, PredictionRow]:
        """Rows by key; absent keys are absent from the result (never assume alignment)."""

        def work(conn: happybase.Connection) -> dict[bytes, PredictionRow]:
            found: dict[bytes, PredictionRow] = {}
            for key, row in conn.table(table).rows(list(keys), columns=_COLUMNS):
                decoded = _decode(row)
                if decoded is not None:
                    found[key] = decoded
            return found

        return await self._client.run(work, timeout_s=timeout_s)

    def write(self, table: str, rows: Iterable[tuple[bytes, float]], version: int) -> int:
        """Write rows in one Thrift mutateRows call (blocking; for jobs). Idempotent: rows are
        keyed by grid cell and carry a fixed timestamp, so a replay rewrites the same cells."""
        cells = [
            (key, {OUTPUT_COL: encode_double(out), VERSION_COL: encode_long(version)})
            for key, out in rows
        ]

        def work(conn: happybase.Connection) -> int:
            with conn.table(table).batch(timestamp=version, wal=True) as batch:
                for key, data in cells:
                    batch.put(key, data)
            return len(cells)

        return self._client.call(work)

    def count(
        self, table: str, row_start: bytes | None = None, row_stop: bytes | None = None
    ) -> int:
        """Rows holding an output with keys in [row_start, row_stop), by a key-only scan
        (blocking; for verification). None means the table's start or end."""

        def work(conn: happybase.Connection) -> int:
            return sum(
                1
                for _ in conn.table(table).scan(
                    row_start=row_start,
                    row_stop=row_stop,
                    columns=[OUTPUT_COL],
                    filter=b"KeyOnlyFilter()",
                    batch_size=SCAN_BATCH,
                )
            )

        return self._client.call(work)

    def digest(
        self, table: str, row_start: bytes | None = None, row_stop: bytes | None = None
    ) -> tuple[int, int]:
        """(rows, digest) of the rows holding an output with keys in [row_start, row_stop):
        a scan of the output cells, hashed as stored (`rowcast.core.keys.cells_digest`;
        blocking, for verification). None means the table's start or end."""

        def work(conn: happybase.Connection) -> tuple[int, int]:
            rows = digest = 0
            batch: list[tuple[bytes, bytes]] = []
            scan = conn.table(table).scan(
                row_start=row_start,
                row_stop=row_stop,
                columns=[OUTPUT_COL],
                batch_size=SCAN_BATCH,
            )
            for key, data in scan:
                batch.append((key, data[OUTPUT_COL]))
                if len(batch) >= SCAN_BATCH:
                    rows, digest = rows + len(batch), add_digests(digest, cells_digest(batch))
                    batch.clear()
            return rows + len(batch), add_digests(digest, cells_digest(batch))

        return self._client.call(work)
