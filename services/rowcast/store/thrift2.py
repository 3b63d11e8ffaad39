"""A small pooled data client for HBase's Thrift2 gateways: what TIMELINE reads of version
tables need, and what Thrift1 (and so happybase) cannot express.

Thrift2's `TGet` carries a `consistency` (STRONG or TIMELINE) and a `targetReplicaId`; its
`TResult` says whether the answer is `stale` (it came from a secondary region replica). A
TIMELINE get goes to the primary replica first and, when the primary does not answer within
the gateway's `hbase.client.primaryCallTimeout.get`, to the secondaries too, taking the first
answer: a region server that died or hangs costs a read that timeout rather than the seconds
until its regions are reassigned.

Why a stale answer cannot be a wrong one here: only version tables are read this way, and a
version table is immutable once READY. Materialisation writes every row before the version
becomes READY, and the READY gate (jobs/materialize.py) reads a sample of rows from every
replica and refuses READY until each replica returns the primary's values. After that nothing
writes the table again; it is dropped, never rewritten, when the version is deleted. So every
replica of a READY version table holds exactly the primary's rows, and "stale" only says which
replica answered. Registry, aliases, operations, audit and datasets change, so they stay on
STRONG reads through Thrift1 (store/client.py).

Calls run on the same kind of thread pool, deadlines and gateway failover as store/client.py
(store/gateways.py); errors are mapped by the same `map_store_error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

from thriftpy2.protocol import TBinaryProtocolFactory
from thriftpy2.thrift import TClient
from thriftpy2.transport import TBufferedTransportFactory, TSocket

from rowcast.aio import within
from rowcast.config import HBaseSettings
from rowcast.deadlines import within_deadline
from rowcast.errors import StoreUnavailable
from rowcast.store.client import OperationMetrics, map_store_error, timeout_ms
from rowcast.store.gateways import FailoverPool, Gateway, GatewaySet
from rowcast.store.idl import hbase2

T = TypeVar("T")

Consistency = Literal["timeline", "strong"]


def consistency_of(value: Consistency) -> int:
    """The Thrift2 `TConsistency` of a setting."""
    return int(hbase2.TConsistency.TIMELINE if value == "timeline" else hbase2.TConsistency.STRONG)


class Thrift2Connection:
    """One open connection to a Thrift2 gateway: `client` is the THBaseService stub."""

    __slots__ = ("client", "socket", "transport")

    def __init__(self, gateway: Gateway, timeout_s: float) -> None:
        self.socket = TSocket(gateway.host, gateway.port)
        self.socket.set_timeout(timeout_ms(timeout_s))  # connect and read
        self.transport = TBufferedTransportFactory().get_transport(self.socket)
        self.transport.open()
        protocol = TBinaryProtocolFactory().get_protocol(self.transport)
        self.client: Any = TClient(hbase2.THBaseService, protocol)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.transport.close()


class Thrift2Client:
    """Runs blocking Thrift2 work on a bounded thread pool, within deadlines, spread over the
    Thrift2 gateways with failover."""

    def __init__(self, settings: HBaseSettings, *, workers: int | None = None) -> None:
        self._settings = settings
        self._executor = ThreadPoolExecutor(
            max_workers=workers or settings.pool_size, thread_name_prefix="hbase2"
        )
        self.gateways = GatewaySet(
            settings.thrift2_addresses(), retry_s=settings.gateway_retry_s, probe=self._probe
        )
        self._pool: FailoverPool[Thrift2Connection] = FailoverPool(
            self.gateways,
            connect=Thrift2Connection,
            set_timeout=lambda conn, s: conn.socket.set_timeout(timeout_ms(s)),
            close=Thrift2Connection.close,
            map_error=map_store_error,
        )
        self._metrics = OperationMetrics()

    @property
    def settings(self) -> HBaseSettings:
        return self._settings

    def call(
        self,
        fn: Callable[[Any], T],
        *,
        retry: bool = True,
        op: str | None = None,
        attempt_timeout_s: float | None = None,
        deadline: float | None = None,
    ) -> T:
        """Run fn(THBaseService client) on this thread (blocking), as HBaseClient.call."""
        return self._pool.attempt(
            lambda conn: fn(conn.client),
            deadline=deadline,
            attempt_timeout_s=attempt_timeout_s or self._settings.timeout_s,
            retry=retry,
            observe=self._metrics.observer(fn, op),
        )

    async def run(
        self,
        fn: Callable[[Any], T],
        *,
        timeout_s: float,
        retry: bool = True,
        op: str | None = None,
        attempt_timeout_s: float | None = None,
    ) -> T:
        """Run fn off the event loop within `timeout_s`, as HBaseClient.run."""
        if timeout_s <= 0:
            raise StoreUnavailable("no time left for the HBase call", retryable=False)
        loop = asyncio.get_running_loop()
        budget = within_deadline(timeout_s)
        deadline = time.monotonic() + budget
        future = loop.run_in_executor(
            self._executor,
            lambda: self.call(
                fn, retry=retry, op=op, attempt_timeout_s=attempt_timeout_s, deadline=deadline
            ),
        )
        try:
            return await within(future, budget)
        except TimeoutError as exc:
            self._metrics.of(fn, op, "any").failed(None, "timeout")
            raise StoreUnavailable(
                f"HBase did not answer within {budget:.3f}s", retryable=False
            ) from exc

    def _probe(self, gateway: Gateway) -> None:
        conn = Thrift2Connection(gateway, self._settings.gateway_attempt_timeout_s * 4)
        try:
            conn.client.tableExists(hbase2.TTableName(ns=b"hbase", qualifier=b"meta"))
        finally:
            conn.close()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._pool.close()
