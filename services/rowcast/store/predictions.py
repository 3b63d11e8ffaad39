"""Reads and writes the rows of a version's prediction table.

Point reads (`get`, `get_many`: the hot path) give each attempt on one gateway at most the
settings' `gateway_attempt_timeout_s`, so that a dead or hung gateway leaves time to fail over
within a Predict's deadline. With TIMELINE consistency (`HBaseSettings.consistency()`, the
default when version tables have region replicas) they go through Thrift2, which can ask for
it (store/thrift2.py says why a stale answer is never a wrong one for a version table);
otherwise through Thrift1 (happybase), the faster path on a single-replica table.

A TIMELINE read the gateway answers with an IOError falls back to the secondaries by name
(`timeline_get`), and small batches of a replicated table are read by point gets
(`timeline_get_many`). Measured on the cluster (`rowcast chaos serving`): right after kill -9
of the region server holding the primaries, the gateway's multi-get path (`getMultiple`,
HBase's AsyncRequestFutureImpl) retried the dead primary (FailedServerException, attempt 2/4)
for ~10 s instead of asking the secondary, and every call in that window failed.

A retry (the attempt before it did not answer in time, or its gateway failed) asks a
secondary by name (`replica_for_attempt`). Measured on the cluster (docs/hbase.md, "Retries
name a secondary"): when the killed region server also held hbase:meta's primary, each plain
TIMELINE get took 4.8-5 s for ~20 s, until meta was reassigned: the gateway's client had
dropped the dead primary's location and looks it up in hbase:meta before it asks any replica,
while a get naming the secondary is served from the locations it still has.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

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
from rowcast.store.idl import hbase2
from rowcast.store.schema import PRED_FAMILY
from rowcast.store.thrift2 import consistency_of
from rowcast.telemetry.domain import HBASE_STALE_READS

OUTPUT_COL = f"{PRED_FAMILY}:o".encode()
VERSION_COL = f"{PRED_FAMILY}:v".encode()
_COLUMNS = [OUTPUT_COL, VERSION_COL]
#: Rows fetched per Thrift scanner call when counting.
SCAN_BATCH = 10_000
#: Extra time one attempt of a multi-get may take per key, on top of the point-read attempt
#: timeout (a batch of 1,000 keys takes a few milliseconds; a second is far more than enough).
ATTEMPT_S_PER_KEY: Final = 0.001
_T2_COLUMNS: Final = [
    hbase2.TColumn(family=PRED_FAMILY.encode(), qualifier=b"o"),
    hbase2.TColumn(family=PRED_FAMILY.encode(), qualifier=b"v"),
]
#: Keys of a replicated version table read by point gets (each ~0.5 ms through one gateway)
#: rather than one multi-get: what concurrent Predict calls coalesce into.
PER_KEY_GETS: Final = 64
_STALE_GET = HBASE_STALE_READS.labels("PredictionStore.get")
_STALE_GET_MANY = HBASE_STALE_READS.labels("PredictionStore.get_many")


def replica_for_attempt(attempt: int, replicas: int) -> int | None:
    """The replica attempt `attempt` (0-based) of a TIMELINE read names: None (HBase's own
    choice: the primary, then the secondaries after `hbase.client.primaryCallTimeout.get`) for
    the first attempt and every `replicas`-th after it, otherwise secondary `attempt % replicas`.

    A retry means the attempt before it did not answer in time or failed; a get naming a
    secondary is served from the gateway's cached locations where a plain TIMELINE get may
    first look its primary up in hbase:meta (seconds when meta's primary died with it). For a
    version table (immutable once READY) every replica's answer is the right one."""
    if replicas < 2:
        return None
    return (attempt % replicas) or None


def _aimed(tget: Any, replica_id: int | None) -> Any:
    if replica_id is None:
        return tget
    return hbase2.TGet(
        row=tget.row,
        columns=tget.columns,
        consistency=hbase2.TConsistency.TIMELINE,
        targetReplicaId=replica_id,
    )


def timeline_get(client: Any, table: bytes, tget: Any, replicas: int, attempt: int = 0) -> Any:
    """One TIMELINE get through a Thrift2 client, aimed as `replica_for_attempt` says; when
    the gateway fails it with an IOError (the primary's region is being moved, its location
    unknown), the same get aimed at each other replica in turn (`targetReplicaId`; a plain
    TIMELINE get stands for the primary), so a version table stays readable while its primary
    is down. The first error is raised when no replica answers."""
    first_target = replica_for_attempt(attempt, replicas)
    cycle: list[int | None] = [None, *range(1, replicas)]
    start = cycle.index(first_target)
    first: hbase2.TIOError | None = None
    for target in cycle[start:] + cycle[:start]:
        try:
            return client.get(table, _aimed(tget, target))
        except hbase2.TIOError as exc:
            first = first or exc
    assert first is not None
    raise first


def timeline_get_many(
    client: Any, table: bytes, tgets: list[Any], replicas: int, attempt: int = 0
) -> list[Any]:
    """TIMELINE multi-get. On a replicated table up to `PER_KEY_GETS` keys are read key by key
    with `timeline_get`: the gateway's multi-get path retries a dead primary for seconds
    (measured: every call failed for ~10 s after kill -9 of the primaries' region server)
    where a point get goes to the secondary at once. Larger batches use `getMultiple` on a
    first attempt and, on an IOError or in a retry, point gets."""
    if replicas > 1 and (len(tgets) <= PER_KEY_GETS or replica_for_attempt(attempt, replicas)):
        return [timeline_get(client, table, tget, replicas, attempt) for tget in tgets]
    try:
        return list(client.getMultiple(table, tgets))
    except hbase2.TIOError:
        if replicas < 2:
            raise
        return [timeline_get(client, table, tget, replicas, attempt) for tget in tgets]


def _decode(row: dict[bytes, bytes]) -> PredictionRow | None:
    if OUTPUT_COL not in row:
        return None
    return PredictionRow(decode_double(row[OUTPUT_COL]), decode_long(row[VERSION_COL]))


def _decode_result(result: Any) -> PredictionRow | None:
    """A Thrift2 TResult's row (None: the row is absent)."""
    cells = {c.qualifier: c.value for c in result.columnValues or ()}
    if b"o" not in cells or b"v" not in cells:
        return None
    return PredictionRow(decode_double(cells[b"o"]), decode_long(cells[b"v"]))


class PredictionStore:
    """Point and multi-get lookups on version tables, and batched writes for materialisation."""

    def __init__(self, client: HBaseClient, *, strong: bool = False) -> None:
        self._client = client
        #: The Thrift2 TConsistency of point reads; None: Thrift1 (STRONG, the faster path).
        self._consistency: int | None = (
            consistency_of("timeline")
            if client.settings.consistency() == "timeline" and not strong
            else None
        )

    def strong(self) -> PredictionStore:
        """This store with STRONG point reads (from the primary): what verification of a table
        still being made needs, since its secondaries may not have every row yet."""
        return PredictionStore(self._client, strong=True)

    async def get(self, table: str, key: bytes, *, timeout_s: float) -> PredictionRow | None:
        settings = self._client.settings
        attempt_s = settings.gateway_attempt_timeout_s
        if self._consistency is not None:
            tget = hbase2.TGet(row=key, columns=_T2_COLUMNS, consistency=self._consistency)
            name = table.encode()

            replicas = settings.region_replication
            attempts = itertools.count()

            def get2(client: Any) -> PredictionRow | None:
                result = timeline_get(client, name, tget, replicas, next(attempts))
                if result.stale:
                    _STALE_GET.inc()
                return _decode_result(result)

            return await self._client.thrift2.run(
                get2, timeout_s=timeout_s, attempt_timeout_s=attempt_s, op="PredictionStore.get"
            )

        def work(conn: happybase.Connection) -> PredictionRow | None:
            return _decode(conn.table(table).row(key, columns=_COLUMNS))

        return await self._client.run(work, timeout_s=timeout_s, attempt_timeout_s=attempt_s)

    async def get_many(
        self, table: str, keys: Sequence[bytes], *, timeout_s: float
    ) -> dict[bytes, PredictionRow]:
        """Rows by key; absent keys are absent from the result (never assume alignment)."""
        attempt_s = self._client.settings.gateway_attempt_timeout_s + ATTEMPT_S_PER_KEY * len(keys)
        if self._consistency is not None:
            consistency = self._consistency
            name = table.encode()
            tgets = [
                hbase2.TGet(row=key, columns=_T2_COLUMNS, consistency=consistency) for key in keys
            ]

            replicas = self._client.settings.region_replication
            attempts = itertools.count()

            def get_many2(client: Any) -> dict[bytes, PredictionRow]:
                found: dict[bytes, PredictionRow] = {}
                stale = 0
                for result in timeline_get_many(client, name, tgets, replicas, next(attempts)):
                    stale += bool(result.stale)
                    decoded = _decode_result(result)
                    # An absent row comes back empty, without its key: keyed by result.row.
                    if decoded is not None and result.row is not None:
                        found[result.row] = decoded
                if stale:
                    _STALE_GET_MANY.inc(stale)
                return found

            return await self._client.thrift2.run(
                get_many2,
                timeout_s=timeout_s,
                attempt_timeout_s=attempt_s,
                op="PredictionStore.get_many",
            )

        def work(conn: happybase.Connection) -> dict[bytes, PredictionRow]:
            found: dict[bytes, PredictionRow] = {}
            for key, row in conn.table(table).rows(list(keys), columns=_COLUMNS):
                decoded = _decode(row)
                if decoded is not None:
                    found[key] = decoded
            return found

        return await self._client.run(work, timeout_s=timeout_s, attempt_timeout_s=attempt_s)

    def replica_rows(
        self, table: str, keys: Sequence[bytes], replica_id: int, *, timeout_s: float
    ) -> dict[bytes, PredictionRow]:
        """Rows by key as region replica `replica_id` holds them (0: the primary; blocking,
        for the READY gate). A secondary is read key by key with `targetReplicaId`: HBase
        honours it for a single get only (a multi-get may be answered by the primary), and
        only an answer marked stale came from the secondary, so only those count."""
        name = table.encode()

        def primary(client: Any) -> dict[bytes, PredictionRow]:
            tgets = [hbase2.TGet(row=key, columns=_T2_COLUMNS) for key in keys]
            found: dict[bytes, PredictionRow] = {}
            for result in client.getMultiple(name, tgets):
                decoded = _decode_result(result)
                if decoded is not None and result.row is not None:
                    found[result.row] = decoded
            return found

        def secondary(client: Any) -> dict[bytes, PredictionRow]:
            found: dict[bytes, PredictionRow] = {}
            for key in keys:
                tget = hbase2.TGet(
                    row=key,
                    columns=_T2_COLUMNS,
                    consistency=consistency_of("timeline"),
                    targetReplicaId=replica_id,
                )
                result = client.get(name, tget)
                decoded = _decode_result(result)
                if decoded is not None and result.stale:
                    found[key] = decoded
            return found

        deadline = time.monotonic() + timeout_s
        return self._client.thrift2.call(
            secondary if replica_id else primary,
            op="PredictionStore.replica_rows",
            attempt_timeout_s=timeout_s,
            deadline=deadline,
        )

    def region_edges(self, table: str, *, timeout_s: float) -> list[bytes]:
        """The first and the last row of every primary region of the table (blocking)."""
        name = table.encode()

        def work(client: Any) -> list[bytes]:
            edges: list[bytes] = []
            for location in client.getAllRegionLocations(name):
                region = location.regionInfo
                if region.replicaId:
                    continue
                start, end = region.startKey or b"", region.endKey or b""
                first = client.getScannerResults(
                    name, hbase2.TScan(startRow=start, stopRow=end or None, columns=_T2_COLUMNS), 1
                )
                # A reversed scan runs from its startRow (inclusive) down to its stopRow: the
                # region's end key is the next region's first row, so it is skipped.
                last = client.getScannerResults(
                    name,
                    hbase2.TScan(
                        startRow=end or None,
                        stopRow=start or None,
                        reversed=True,
                        columns=_T2_COLUMNS,
                    ),
                    2,
                )
                edges.extend(r.row for r in first)
                edges.extend([r.row for r in last if r.row != end][:1])
            return sorted(set(edges))

        deadline = time.monotonic() + timeout_s
        return self._client.thrift2.call(
            work, op="PredictionStore.region_edges", attempt_timeout_s=timeout_s, deadline=deadline
        )

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
