"""Readiness of the embedded HBase: a real round trip through each Thrift gateway.

An open port proves nothing (a gateway listens long before the master has assigned
hbase:meta), so `probe` writes a row and reads it back through Thrift1, and `probe_admin`
asks Thrift2 about the probe table. Neither ever raises: a failure is "not ready yet".
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Final

import happybase
from thriftpy2.protocol import TBinaryProtocolFactory
from thriftpy2.rpc import make_client
from thriftpy2.transport import TBufferedTransportFactory

from rowcast.store.idl import hbase2

PROBE_TABLE: Final = b"rowcast_probe"
_PROBE_FAMILY: Final = b"f"


@dataclass(frozen=True)
class ProbeResult:
    """Outcome of one readiness round trip."""

    ok: bool
    detail: str
    elapsed_s: float = 0.0


def probe(host: str, port: int, timeout_s: float) -> ProbeResult:
    """One put/get round trip through the Thrift1 gateway; never raises.

    An open port proves nothing (the gateway listens long before the master has assigned
    hbase:meta), so readiness is a real write read back. Each probe writes a fresh row and
    deletes it, so concurrent probes cannot confuse each other and the table stays tiny.
    """
    started = time.monotonic()
    try:
        conn = happybase.Connection(host, port, timeout=max(1, int(timeout_s * 1000)))
        try:
            _ensure_probe_table(conn)
            table = conn.table(PROBE_TABLE)
            row = f"probe-{uuid.uuid4().hex}".encode()
            value = uuid.uuid4().hex.encode()
            column = _PROBE_FAMILY + b":v"
            table.put(row, {column: value})
            got = table.row(row, columns=[column]).get(column)
            table.delete(row)
        finally:
            conn.close()
    except Exception as exc:  # any failure means "not ready"; the caller polls again
        detail = f"{type(exc).__name__}: {exc}".strip()
        return ProbeResult(False, first_line(detail), time.monotonic() - started)
    elapsed = time.monotonic() - started
    if got != value:
        return ProbeResult(False, f"read back {got!r}, wrote {value!r}", elapsed)
    return ProbeResult(True, f"put/get round trip via {host}:{port} ok", elapsed)


def probe_admin(host: str, port: int, timeout_s: float) -> ProbeResult:
    """One Thrift2 call (`tableExists` of the probe table) through the admin gateway; never
    raises. Run after `probe`, so the table exists and the answer must be True."""
    started = time.monotonic()
    try:
        client = make_client(
            _thrift2().THBaseService,
            host,
            port,
            timeout=max(1, int(timeout_s * 1000)),
            trans_factory=TBufferedTransportFactory(),
            proto_factory=TBinaryProtocolFactory(),
        )
        try:
            name = _thrift2().TTableName(ns=b"default", qualifier=PROBE_TABLE)
            exists = bool(client.tableExists(name))
        finally:
            client.close()
    except Exception as exc:  # any failure means "not ready"
        detail = f"thrift2: {type(exc).__name__}: {exc}".strip()
        return ProbeResult(False, first_line(detail), time.monotonic() - started)
    elapsed = time.monotonic() - started
    if not exists:
        return ProbeResult(False, f"thrift2 does not see table {PROBE_TABLE.decode()}", elapsed)
    return ProbeResult(True, f"thrift2 tableExists via {host}:{port} ok", elapsed)


def _thrift2() -> Any:
    # HBase's own thrift2/hbase.thrift, loaded once by the store package.
    return hbase2


def _ensure_probe_table(conn: Any) -> None:
    if PROBE_TABLE in conn.tables():
        return
    try:
        conn.create_table(PROBE_TABLE, {_PROBE_FAMILY.decode(): {"max_versions": 1}})
    except Exception:
        # Another prober may have created it between our two calls; that is fine.
        if PROBE_TABLE not in conn.tables():
            raise


def first_line(text: str, limit: int = 300) -> str:
    line = text.splitlines()[0] if text else text
    return line if len(line) <= limit else line[: limit - 3] + "..."
