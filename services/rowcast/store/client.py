"""The async gateway to HBase's Thrift1 server: pooled happybase connections on worker threads,
and the one map of lower-level errors to domain errors.

happybase is blocking, so every call runs in a bounded thread pool, never on the event loop,
and within the caller's `timeout_s` (a required keyword: no call waits without a deadline).
Lower-level failures (Thrift, happybase, sockets, ZooKeeper) become domain errors in
`map_store_error` and nowhere else: HBase unreachable or silent is `StoreUnavailable`, a
request HBase refuses is `StoreRejected` (a rowcast bug, INTERNAL). A local error (a model or
spool file that cannot be read) is none of these and is raised as it is. A connection that
failed is thrown away and replaced by a fresh one (e.g. after a gateway restart). Calls are
spread over every Thrift1 gateway of the settings and fail over to the next one within their
deadline when one is dead or hung (store/gateways.py); idempotent calls also get one more try
on a fresh connection, so a gateway restart costs callers nothing.

happybase's own ConnectionPool is not used: it connects in its constructor (so a service could
not start while HBase is down) and re-opens inside its error handler, which raises a second,
unrelated error while the gateway is still down.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final, TypeVar

import happybase
from kazoo import exceptions as zk
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import RetryFailedError
from thriftpy2.protocol.cybin import ProtocolError
from thriftpy2.protocol.exc import TProtocolException
from thriftpy2.thrift import TApplicationException, TClient, TDecodeException, TException
from thriftpy2.transport import TSocket, TTransportException

from rowcast.aio import within
from rowcast.config import HBaseSettings
from rowcast.deadlines import within_deadline
from rowcast.errors import AlreadyExists, RowcastError, StoreRejected, StoreUnavailable
from rowcast.store.gateways import FailoverPool, Gateway, GatewaySet
from rowcast.store.idl import Hbase_thrift, hbase2
from rowcast.telemetry.domain import HBASE_CALL_ERRORS, HBASE_CALL_SECONDS

if TYPE_CHECKING:
    from rowcast.store.thrift2 import Thrift2Client

T = TypeVar("T")

#: Lower-level error -> the domain error it means; the first isinstance match wins, so a class
#: comes before its bases. tests/unit/test_store_errors.py proves that every exception class of
#: thriftpy2, of both HBase IDLs, of kazoo and of the socket layer is listed.
DOMAIN_BY_LOWER: Final[tuple[tuple[type[BaseException], type[RowcastError]], ...]] = (
    # HBase answered: the request is malformed (a rowcast bug, not the caller's input).
    (Hbase_thrift.IllegalArgument, StoreRejected),
    (hbase2.TIllegalArgument, StoreRejected),
    (Hbase_thrift.AlreadyExists, AlreadyExists),
    # HBase answered with a server-side IOException: a region not online, a table not yet
    # assigned, the cluster shutting down. Retrying later can succeed.
    (Hbase_thrift.IOError, StoreUnavailable),
    (hbase2.TIOError, StoreUnavailable),
    # No (whole) answer: the gateway is down, restarting, or replied garbage mid-call.
    (TTransportException, StoreUnavailable),
    (TApplicationException, StoreUnavailable),
    (TProtocolException, StoreUnavailable),
    (TDecodeException, StoreUnavailable),
    (ProtocolError, StoreUnavailable),
    (TException, StoreUnavailable),
    # Sockets: only the network's errors, never a local file's (see _NETWORK_ERRNOS).
    (TimeoutError, StoreUnavailable),
    (ConnectionError, StoreUnavailable),
    (socket.gaierror, StoreUnavailable),
    (socket.herror, StoreUnavailable),
    # ZooKeeper (store/notify.py): out of reach, or a session lost ...
    (zk.ConnectionLoss, StoreUnavailable),
    (zk.ConnectionDropped, StoreUnavailable),
    (zk.SessionExpiredError, StoreUnavailable),
    (zk.SessionMovedError, StoreUnavailable),
    (zk.UnknownSessionError, StoreUnavailable),
    (zk.OperationTimeoutError, StoreUnavailable),
    (zk.RequestTimeoutError, StoreUnavailable),
    (zk.ThrottledOpError, StoreUnavailable),
    (zk.SystemZookeeperError, StoreUnavailable),
    (zk.ZookeeperStoppedError, StoreUnavailable),
    (KazooTimeoutError, StoreUnavailable),
    (RetryFailedError, StoreUnavailable),
    # ... or an answer rowcast did not expect (NoNode, BadVersion, ...): a rowcast bug.
    (zk.KazooException, StoreRejected),
)

#: Every class mapped above.
LOWER_ERRORS: Final[tuple[type[BaseException], ...]] = tuple(c for c, _ in DOMAIN_BY_LOWER)
#: What the ZooKeeper adapter (store/notify.py) catches and logs, best effort: kazoo's errors
#: and any OSError (it reads no local file, so every OSError there is the network's).
ZOOKEEPER_ERRORS: Final = (zk.KazooException, KazooTimeoutError, OSError)

#: A plain OSError is the network's only with one of these numbers (a route lost while
#: connected); any other (ENOENT, EACCES, ...) is a local error, never "HBase unavailable".
_NETWORK_ERRNOS: Final = frozenset(
    {
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ENETRESET,
        errno.EHOSTUNREACH,
        errno.EHOSTDOWN,
        errno.ENOTCONN,
        errno.ESHUTDOWN,
    }
)
_ZOOKEEPER_ONLY: Final = (zk.KazooException, KazooTimeoutError)


def map_store_error(exc: BaseException) -> RowcastError | None:
    """The domain error a lower-level error means; None when `exc` is none (a local file
    error, a bug), which the caller then lets propagate as it is."""
    if isinstance(exc, RowcastError):
        return exc
    domain = next((d for cls, d in DOMAIN_BY_LOWER if isinstance(exc, cls)), None)
    if domain is None and isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS:
        domain = StoreUnavailable
    if domain is None:
        return None
    where = "ZooKeeper" if isinstance(exc, _ZOOKEEPER_ONLY) else "HBase"
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if isinstance(message, bytes):
        message = message.decode(errors="replace")
    detail = f"{type(exc).__name__}: {message}"
    if domain is StoreUnavailable:
        return StoreUnavailable(f"{where} unavailable: {detail}"[:500])
    if domain is AlreadyExists:
        return AlreadyExists(f"{where}: {detail}"[:500])
    return StoreRejected(f"{where} refused the request: {detail}"[:500])


#: The `kind` label of rowcast_hbase_call_errors_total for each domain error a call can end in.
_ERROR_KINDS: Final[dict[type[RowcastError], str]] = {
    StoreUnavailable: "unavailable",
    StoreRejected: "rejected",
    AlreadyExists: "already_exists",
}


def operation_of(fn: Callable[..., object]) -> str:
    """The name of the code that made an HBase call: `PredictionStore.get` for the `work`
    function defined in that method (a lambda gets its enclosing function's name)."""
    name: str = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    enclosing = name.rsplit(".<locals>.", 1)[0]
    return enclosing.rsplit("<locals>.", 1)[-1]


class CallMetrics:
    """The metric series of one operation through one gateway, resolved once."""

    __slots__ = ("gateway", "operation", "seconds")

    def __init__(self, operation: str, gateway: str) -> None:
        self.operation = operation
        self.gateway = gateway
        self.seconds = HBASE_CALL_SECONDS.labels(operation, gateway)

    def failed(self, error: RowcastError | None, kind: str | None = None) -> None:
        """Count a failed call: `kind`, or the kind of the domain error it ended in (None: an
        error that is not the store's)."""
        kind = kind or (_ERROR_KINDS.get(type(error), "other") if error is not None else "other")
        HBASE_CALL_ERRORS.labels(self.operation, self.gateway, kind).inc()


class OperationMetrics:
    """The metric series of every operation through every gateway of one client."""

    def __init__(self) -> None:
        #: (operation key, gateway) -> its series.
        self._series: dict[tuple[str, str], CallMetrics] = {}

    def of(self, fn: Callable[..., object], op: str | None, gateway: str) -> CallMetrics:
        """`op`'s series (default: the function that defined fn) through `gateway`."""
        key = (op if op is not None else str(getattr(fn, "__qualname__", "")), gateway)
        metrics = self._series.get(key)
        if metrics is None:
            metrics = self._series[key] = CallMetrics(op or operation_of(fn), gateway)
        return metrics

    def observer(
        self, fn: Callable[..., object], op: str | None
    ) -> Callable[[Gateway, float, RowcastError | None, str | None], None]:
        """What FailoverPool.attempt calls after each attempt of one call."""

        def observe(
            gateway: Gateway, seconds: float, error: RowcastError | None, kind: str | None
        ) -> None:
            metrics = self.of(fn, op, gateway.address)
            metrics.seconds.observe(seconds)
            if kind is not None or error is not None:
                metrics.failed(error, kind)

        return observe


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """Raise the domain error of a lower-level error raised in the block (others as they are)."""
    try:
        yield
    except Exception as exc:
        mapped = map_store_error(exc)
        if mapped is None or mapped is exc:
            raise
        raise mapped from exc


class _Connection(happybase.Connection):  # type: ignore[misc]  # happybase is untyped
    """A happybase connection that keeps its socket, so that each attempt can set the socket
    timeout it may use (min(attempt timeout, time left))."""

    socket: TSocket

    def _refresh_thrift_client(self) -> None:
        self.socket = TSocket(host=self.host, port=self.port, socket_timeout=self.timeout)
        self.transport = self._transport_class(self.socket)
        protocol = self._protocol_class(self.transport, decode_response=False)
        self.client = TClient(Hbase_thrift.Hbase, protocol)


def timeout_ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class HBaseClient:
    """Runs blocking happybase work on a bounded thread pool, within deadlines, spread over the
    Thrift1 gateways with failover (store/gateways.py)."""

    def __init__(self, settings: HBaseSettings) -> None:
        self._settings = settings
        self._executor = ThreadPoolExecutor(
            max_workers=settings.pool_size, thread_name_prefix="hbase"
        )
        # Connections are created lazily (per gateway, one per worker thread at most) so that a
        # service starts (and reports UNAVAILABLE per call) while HBase is down.
        self.gateways = GatewaySet(
            settings.thrift_addresses(), retry_s=settings.gateway_retry_s, probe=self._probe
        )
        self._pool: FailoverPool[_Connection] = FailoverPool(
            self.gateways,
            connect=self._open,
            set_timeout=lambda conn, s: conn.socket.set_timeout(timeout_ms(s)),
            close=_close_quietly,
            map_error=map_store_error,
        )
        self._metrics = OperationMetrics()
        self._thrift2: Thrift2Client | None = None
        self._thrift2_lock = threading.Lock()

    @property
    def settings(self) -> HBaseSettings:
        return self._settings

    @property
    def thrift2(self) -> Thrift2Client:
        """The Thrift2 data client over the same settings (TIMELINE reads of version tables),
        made on first use."""
        if self._thrift2 is None:
            from rowcast.store.thrift2 import Thrift2Client  # it builds on this module

            with self._thrift2_lock:
                if self._thrift2 is None:
                    self._thrift2 = Thrift2Client(self._settings)
        return self._thrift2

    def call(
        self,
        fn: Callable[[happybase.Connection], T],
        *,
        retry: bool = True,
        op: str | None = None,
        attempt_timeout_s: float | None = None,
        deadline: float | None = None,
    ) -> T:
        """Run fn with a pooled connection on this thread (blocking: for jobs and worker
        processes); errors mapped. Each socket read waits at most `attempt_timeout_s` (default
        the settings' `timeout_s`) and never past `deadline` (monotonic; None: none); a gateway
        that does not answer is marked down and the call moves to the next one while `retry`
        allows (see store/gateways.py). `op` names the operation in the metrics (default: the
        function that defined fn)."""
        return self._pool.attempt(
            fn,
            deadline=deadline,
            attempt_timeout_s=attempt_timeout_s or self._settings.timeout_s,
            retry=retry,
            observe=self._metrics.observer(fn, op),
        )

    def _open(self, gateway: Gateway, timeout_s: float) -> _Connection:
        conn = _Connection(
            host=gateway.host, port=gateway.port, timeout=timeout_ms(timeout_s), autoconnect=False
        )
        conn.socket.set_timeout(timeout_ms(timeout_s))  # the connect timeout too
        conn.open()
        return conn

    def _probe(self, gateway: Gateway) -> None:
        conn = self._open(gateway, self._settings.gateway_attempt_timeout_s * 4)
        try:
            conn.tables()
        finally:
            _close_quietly(conn)

    def connect(self, timeout_s: float) -> happybase.Connection:
        """A new connection of its own (not pooled, not yet open) to a healthy gateway whose
        socket waits at most `timeout_s` per read: for a long scan that must end by a deadline
        (jobs/diff.py)."""
        gateway = self.gateways.order()[0]
        return _Connection(
            host=gateway.host, port=gateway.port, timeout=timeout_ms(timeout_s), autoconnect=False
        )

    async def run(
        self,
        fn: Callable[[happybase.Connection], T],
        *,
        timeout_s: float,
        retry: bool = True,
        op: str | None = None,
        attempt_timeout_s: float | None = None,
    ) -> T:
        """Run fn off the event loop; give up with StoreUnavailable (not retryable) when
        `timeout_s`, the caller's remaining time, runs out. Attempts fail over between gateways
        within that time (`attempt_timeout_s` each, default the settings' `timeout_s`). `op`
        names the operation in the metrics (default: the function that defined fn, e.g.
        `PredictionStore.get`)."""
        if timeout_s <= 0:
            # Nothing may start that the caller has stopped waiting for (a write, say).
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
            # The attempt goes on in its thread and records its own duration when it ends.
            gateway = (
                self.gateways.gateways[0].address if len(self.gateways.gateways) == 1 else "any"
            )
            self._metrics.of(fn, op, gateway).failed(None, "timeout")
            raise StoreUnavailable(
                f"HBase did not answer within {budget:.3f}s", retryable=False
            ) from exc

    def ping(self) -> bool:
        """One cheap round trip; True when a gateway answers."""
        try:
            self.call(lambda c: c.tables(), retry=False)
        except RowcastError:
            return False
        return True

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._pool.close()
        if self._thrift2 is not None:
            self._thrift2.close()


def _close_quietly(conn: Any) -> None:
    # The connection is being discarded because it failed; closing it may fail too.
    with contextlib.suppress(Exception):
        conn.close()


def wait_until_ready(client: HBaseClient, timeout_s: float) -> None:
    """Block until the gateway answers or raise StoreUnavailable after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not client.ping():
        if time.monotonic() > deadline:
            raise StoreUnavailable(f"HBase not reachable after {timeout_s}s")
        time.sleep(0.5)


def check_and_put(
    conn: happybase.Connection,
    table: str,
    row: bytes,
    column: bytes,
    expected: bytes,
    value: bytes,
) -> bool:
    """Thrift1 checkAndPut (happybase does not wrap it): write column=value only if the column
    still holds `expected` (empty: the column must be absent). Row-atomic in HBase: of
    concurrent writers expecting the same value, exactly one succeeds."""
    mutation = Hbase_thrift.Mutation(isDelete=False, column=column, value=value, writeToWAL=True)
    return bool(
        conn.client.checkAndPut(table.encode(), row, column, expected or None, mutation, {})
    )
