"""Table administration through HBase's Thrift2 gateway.

Thrift1 (what happybase speaks) cannot create pre-split tables, and happybase's column-family
defaults (3 versions, block cache off, no bloom filter) are wrong for lookups. Thrift2's
`createTable` takes split keys and full family descriptors, so DDL goes through it (the IDL:
store/idl.py).

Every method is blocking (run it in a thread) and ends within its required `timeout_s`: before
each round trip the socket gets the time left as its timeout, so a gateway that does not answer,
or a master slow to create or drop a table, ends the call with StoreUnavailable, never a hang.
A change that outlives its deadline may still complete in HBase afterwards; `create` and `drop`
are idempotent, so a retry finds the work done.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from thriftpy2.protocol import TBinaryProtocolFactory
from thriftpy2.thrift import TClient
from thriftpy2.transport import TBufferedTransportFactory, TSocket

from rowcast.config import HBaseSettings
from rowcast.deadlines import within_deadline
from rowcast.errors import RowcastError, StoreUnavailable
from rowcast.store.client import CallMetrics, store_errors
from rowcast.store.gateways import Gateway, GatewaySet
from rowcast.store.idl import Hbase_thrift, hbase2

NAMESPACE = "rowcast"

#: The deadline of one table change for a caller without one of its own (start-up, a job, a
#: tool): createTable returns only once the master has assigned every region of a pre-split
#: table, which takes seconds on a busy cluster.
DDL_TIMEOUT_S: Final = 60.0
#: HBase answered (through a working gateway) with a server-side error.
_HBASE_ANSWERED: Final = (Hbase_thrift.IOError, hbase2.TIOError)
#: The table attribute HBase reads the number of region replicas from.
REGION_REPLICATION: Final = b"REGION_REPLICATION"


@dataclass(frozen=True)
class Family:
    """A column family and the settings lookups need."""

    name: str
    #: One cell version: a version table is immutable, audit cells are written once.
    max_versions: int = 1
    block_cache: bool = True
    #: ROW bloom filters make point gets of absent keys skip store files.
    bloom_row: bool = True
    in_memory: bool = False


def split_name(table: str) -> tuple[str, str]:
    ns, _, qualifier = table.rpartition(":")
    return (ns or "default", qualifier)


class _Deadlined:
    """A Thrift2 client whose every call waits at most the time left before one deadline."""

    def __init__(self, client: Any, sock: TSocket, deadline: float) -> None:
        self._client = client
        self._sock = sock
        self._deadline = deadline

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)

        def call(*args: Any) -> Any:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the deadline passed between two round trips")
            self._sock.set_timeout(max(1, int(left * 1000)))
            return method(*args)

        return call


class TableAdmin:
    """Creates, inspects and drops tables (pre-split, explicit family settings) via Thrift2."""

    def __init__(self, settings: HBaseSettings) -> None:
        self._settings = settings
        # No background probe: table changes are rare; a gateway marked down is still tried
        # last, and rejoins when it accepts a connection again.
        self._gateways = GatewaySet(settings.thrift2_addresses(), retry_s=settings.gateway_retry_s)
        self._metrics: dict[tuple[str, str], CallMetrics] = {}

    @property
    def settings(self) -> HBaseSettings:
        return self._settings

    @contextlib.contextmanager
    def _client(self, timeout_s: float, operation: str) -> Iterator[Any]:
        """A connected Thrift2 client whose calls all end within `timeout_s` (less the margin
        the caller needs to answer in); lower errors mapped. The block is one call of
        `operation` in the metrics. It connects to the healthy Thrift2 gateways in turn: one
        that refuses the connection is marked down and the next is tried (the block itself
        runs once: a table change is never replayed here; `create` and `drop` are idempotent
        for the caller to retry)."""
        started = time.perf_counter()
        budget = within_deadline(timeout_s)
        deadline = time.monotonic() + budget
        transport, sock, gateway = self._connect(deadline)
        metrics = self._metrics_of(operation, gateway)
        try:
            with store_errors():
                protocol = TBinaryProtocolFactory().get_protocol(transport)
                yield _Deadlined(TClient(hbase2.THBaseService, protocol), sock, deadline)
        except StoreUnavailable as exc:
            # Every socket wait is the time left: a timeout is the deadline passing.
            if not isinstance(exc.__cause__, TimeoutError) and time.monotonic() < deadline:
                metrics.failed(exc)
                if not isinstance(exc.__cause__, _HBASE_ANSWERED):
                    self._gateways.failed(gateway)
                raise
            metrics.failed(exc, "timeout")
            self._gateways.failed(gateway)
            raise StoreUnavailable(
                f"HBase did not complete the table operation within {budget:.3f}s",
                retryable=False,
            ) from exc
        except RowcastError as exc:
            metrics.failed(exc)
            raise
        else:
            self._gateways.answered(gateway)
        finally:
            transport.close()
            metrics.seconds.observe(time.perf_counter() - started)

    def _connect(self, deadline: float) -> tuple[Any, TSocket, Gateway]:
        """An open transport to the first Thrift2 gateway that accepts a connection."""
        error: StoreUnavailable | None = None
        for gateway in self._gateways.order():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock = TSocket(gateway.host, gateway.port)
            sock.set_timeout(max(1, int(left * 1000)))
            transport = TBufferedTransportFactory().get_transport(sock)
            try:
                with store_errors():
                    transport.open()
            except StoreUnavailable as exc:
                self._metrics_of("TableAdmin.connect", gateway).failed(exc)
                self._gateways.failed(gateway)
                error = exc
                continue
            return transport, sock, gateway
        raise error or StoreUnavailable("no time left for the table operation", retryable=False)

    def _metrics_of(self, operation: str, gateway: Gateway) -> CallMetrics:
        key = (operation, gateway.address)
        metrics = self._metrics.get(key)
        if metrics is None:
            metrics = self._metrics[key] = CallMetrics(operation, gateway.address)
        return metrics

    def ensure_namespace(self, name: str = NAMESPACE, *, timeout_s: float) -> None:
        with self._client(timeout_s, "TableAdmin.ensure_namespace") as c:
            existing = {ns.name for ns in c.listNamespaceDescriptors()}
            if name not in existing:
                c.createNamespace(hbase2.TNamespaceDescriptor(name=name))

    def exists(self, table: str, *, timeout_s: float) -> bool:
        with self._client(timeout_s, "TableAdmin.exists") as c:
            return bool(c.tableExists(_table_name(table)))

    def create(
        self,
        table: str,
        families: Sequence[Family],
        split_keys: Sequence[bytes] = (),
        *,
        timeout_s: float,
        region_replication: int = 1,
    ) -> bool:
        """Create the table unless it exists; True when this call created it. With
        `region_replication` > 1 every region gets that many replicas (one primary, the rest
        read-only secondaries HBase places on other region servers)."""
        name = _table_name(table)
        attributes = (
            {REGION_REPLICATION: str(region_replication).encode()}
            if region_replication > 1
            else None
        )
        columns = [
            hbase2.TColumnFamilyDescriptor(
                name=f.name.encode(),
                maxVersions=f.max_versions,
                blockCacheEnabled=f.block_cache,
                bloomnFilterType=(
                    hbase2.TBloomFilterType.ROW if f.bloom_row else hbase2.TBloomFilterType.NONE
                ),
                inMemory=f.in_memory,
            )
            for f in families
        ]
        with self._client(timeout_s, "TableAdmin.create") as c:
            if c.tableExists(name):
                return False
            c.createTable(
                hbase2.TTableDescriptor(tableName=name, columns=columns, attributes=attributes),
                list(split_keys) or None,
            )
            return True

    def drop(self, table: str, *, timeout_s: float) -> bool:
        """Disable and delete the table; False when it did not exist."""
        name = _table_name(table)
        with self._client(timeout_s, "TableAdmin.drop") as c:
            if not c.tableExists(name):
                return False
            if c.isTableEnabled(name):
                c.disableTable(name)
            c.deleteTable(name)
            return True

    def list_tables(self, namespace: str = NAMESPACE, *, timeout_s: float) -> list[str]:
        with self._client(timeout_s, "TableAdmin.list_tables") as c:
            names = c.getTableNamesByNamespace(namespace)
            return sorted(f"{n.ns.decode()}:{n.qualifier.decode()}" for n in names)

    def region_replication(self, table: str, *, timeout_s: float) -> int:
        """The table's region replication as HBase holds it (1 when not set)."""
        with self._client(timeout_s, "TableAdmin.region_replication") as c:
            descriptor = c.getTableDescriptor(_table_name(table))
        value = (descriptor.attributes or {}).get(REGION_REPLICATION)
        return int(value) if value else 1

    def region_count(self, table: str, *, timeout_s: float) -> int:
        ns, qualifier = split_name(table)
        with self._client(timeout_s, "TableAdmin.region_count") as c:
            return len(c.getAllRegionLocations(f"{ns}:{qualifier}".encode()))


def _table_name(table: str) -> Any:
    ns, qualifier = split_name(table)
    return hbase2.TTableName(ns=ns.encode(), qualifier=qualifier.encode())
