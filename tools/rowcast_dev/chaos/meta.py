"""Where a table's regions are served, read from `hbase:meta` through the Thrift1 gateway.

A meta row is `<table>,<start key>,<region id>.<encoded name>.`; the primary's location is in
`info:server` ("host:port") and `info:serverstartcode`, replica r's in the same columns with
the suffix `_<r as 4 hex digits>` (`info:server_0001`). A region server restarted on the same
port gets a new start code, so (host:port, start code) names one process's life.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import happybase

from rowcast.store.client import HBaseClient

META = "hbase:meta"
#: Deadline of one read of meta (a scan of one table's rows: a few dozen).
META_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ReplicaLocation:
    """One replica of one region: where meta says it is served ("" when unassigned)."""

    region: bytes
    replica_id: int
    server: str
    start_code: int | None


@dataclass(frozen=True)
class TableLocations:
    """Every replica of every region of one table, as meta lists them."""

    table: str
    replicas: tuple[ReplicaLocation, ...]

    @property
    def primaries(self) -> tuple[ReplicaLocation, ...]:
        return tuple(r for r in self.replicas if r.replica_id == 0)

    @property
    def region_replication(self) -> int:
        """Replicas per region that meta knows of (1 when the table has no secondaries)."""
        return 1 + max((r.replica_id for r in self.replicas), default=0)

    def primaries_by_server(self) -> Counter[str]:
        """host:port -> primaries served there (unassigned ones under "")."""
        return Counter(r.server for r in self.primaries)

    def primaries_on(self, servers: Iterable[str]) -> int:
        wanted = set(servers)
        return sum(1 for r in self.primaries if r.server in wanted)

    def all_primaries_on(self, live: Iterable[str]) -> bool:
        """Every primary is assigned to one of the `live` servers (host:port)."""
        alive = set(live)
        return bool(self.primaries) and all(r.server in alive for r in self.primaries)


def _suffix(replica_id: int) -> bytes:
    return b"" if replica_id == 0 else f"_{replica_id:04X}".encode()


def parse_meta_rows(
    table: str, rows: Iterable[tuple[bytes, Mapping[bytes, bytes]]]
) -> TableLocations:
    """The table's replica locations from its meta rows (pure: what `locations` reads)."""
    replicas: list[ReplicaLocation] = []
    for key, cells in rows:
        ids = {0}
        for column in cells:
            for name in (b"info:server_", b"info:regioninfo_", b"info:state_"):
                if column.startswith(name):
                    tail = column[len(name) :]
                    try:
                        ids.add(int(tail, 16))
                    except ValueError:
                        continue
        for replica_id in sorted(ids):
            suffix = _suffix(replica_id)
            server = cells.get(b"info:server" + suffix, b"").decode()
            code = cells.get(b"info:serverstartcode" + suffix)
            replicas.append(
                ReplicaLocation(key, replica_id, server, _start_code(code) if code else None)
            )
    return TableLocations(table, tuple(replicas))


def _start_code(value: bytes) -> int | None:
    # Written by Bytes.toBytes(long): 8 bytes big-endian.
    return int.from_bytes(value, "big", signed=True) if len(value) == 8 else None


def meta_bounds(table: str) -> tuple[bytes, bytes]:
    """The scan bounds of a table's meta rows, as HBase's MetaTableAccessor computes them:
    meta sorts rows by table name first (its own comparator), so a plain prefix scan of
    `<table>,` misses them; `<table>,,` to `<table> ,,` does not."""
    name = table.encode()
    return name + b",,", name + b" ,,"


def _meta_rows(conn: happybase.Connection, table: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    start, stop = meta_bounds(table)
    prefix = f"{table},".encode()
    rows = conn.table(META).scan(row_start=start, row_stop=stop, columns=[b"info"])
    return [(key, cells) for key, cells in rows if key.startswith(prefix)]


async def locations(client: HBaseClient, table: str) -> TableLocations:
    """Where meta says the table's regions are served now (StoreUnavailable while the meta
    region itself is moving)."""
    rows = await client.run(lambda conn: _meta_rows(conn, table), timeout_s=META_TIMEOUT_S)
    return parse_meta_rows(table, rows)
