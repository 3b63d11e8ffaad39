"""Table administration through HBase's Thrift2 gateway.

Thrift1 (what happybase speaks) cannot create pre-split tables, and happybase's column-family
defaults (3 versions, block cache off, no bloom filter) are wrong for lookups. Thrift2's
`createTable` takes split keys and full family descriptors, so DDL goes through it. The IDL is
HBase's own `thrift2/hbase.thrift` (from the hbase-thrift 2.6.1 jar), loaded with thriftpy2.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import thriftpy2
from thriftpy2.protocol import TBinaryProtocolFactory
from thriftpy2.rpc import make_client
from thriftpy2.transport import TBufferedTransportFactory

from rowcast.config import HBaseSettings
from rowcast.store.client import LOWER_ERRORS, map_store_error

with resources.as_file(resources.files("rowcast.store") / "hbase2.thrift") as _idl:
    hbase2: Any = thriftpy2.load(str(_idl), module_name="hbase2_thrift")

NAMESPACE = "rowcast"


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


class TableAdmin:
    """Creates, inspects and drops tables (pre-split, explicit family settings) via Thrift2."""

    def __init__(self, settings: HBaseSettings) -> None:
        self._settings = settings

    @contextlib.contextmanager
    def _client(self) -> Iterator[Any]:
        try:
            client = make_client(
                hbase2.THBaseService,
                self._settings.host,
                self._settings.thrift2_port,
                timeout=int(max(self._settings.timeout_s, 30.0) * 1000),
                trans_factory=TBufferedTransportFactory(),
                proto_factory=TBinaryProtocolFactory(),
            )
        except LOWER_ERRORS as exc:
            raise map_store_error(exc) from exc
        try:
            yield client
        except hbase2.TIOError as exc:
            raise map_store_error(exc) from exc
        except LOWER_ERRORS as exc:
            raise map_store_error(exc) from exc
        finally:
            client.close()

    def ensure_namespace(self, name: str = NAMESPACE) -> None:
        with self._client() as c:
            existing = {ns.name for ns in c.listNamespaceDescriptors()}
            if name not in existing:
                c.createNamespace(hbase2.TNamespaceDescriptor(name=name))

    def exists(self, table: str) -> bool:
        ns, qualifier = split_name(table)
        with self._client() as c:
            return bool(
                c.tableExists(hbase2.TTableName(ns=ns.encode(), qualifier=qualifier.encode()))
            )

    def create(
        self, table: str, families: Sequence[Family], split_keys: Sequence[bytes] = ()
    ) -> bool:
        """Create the table unless it exists; True when this call created it."""
        ns, qualifier = split_name(table)
        name = hbase2.TTableName(ns=ns.encode(), qualifier=qualifier.encode())
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
        with self._client() as c:
            if c.tableExists(name):
                return False
            c.createTable(
                hbase2.TTableDescriptor(tableName=name, columns=columns), list(split_keys) or None
            )
            return True

    def drop(self, table: str) -> bool:
        """Disable and delete the table; False when it did not exist."""
        ns, qualifier = split_name(table)
        name = hbase2.TTableName(ns=ns.encode(), qualifier=qualifier.encode())
        with self._client() as c:
            if not c.tableExists(name):
                return False
            if c.isTableEnabled(name):
                c.disableTable(name)
            c.deleteTable(name)
            return True

    def list_tables(self, namespace: str = NAMESPACE) -> list[str]:
        with self._client() as c:
            names = c.getTableNamesByNamespace(namespace)
            return sorted(f"{n.ns.decode()}:{n.qualifier.decode()}" for n in names)

    def region_count(self, table: str) -> int:
        ns, qualifier = split_name(table)
        with self._client() as c:
            locations = c.getAllRegionLocations(f"{ns}:{qualifier}".encode())
            return len(locations)
