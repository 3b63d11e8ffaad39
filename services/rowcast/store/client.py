"""The async gateway to HBase's Thrift1 server: pooled happybase connections on worker threads.

happybase is blocking, so every call runs in a bounded thread pool, never on the event loop.
Lower-level failures (socket errors, Thrift transport errors, HBase IOErrors) are mapped to
`StoreUnavailable` here and nowhere else. A connection that failed is thrown away and replaced
by a fresh one (e.g. after a gateway restart); idempotent calls are retried once on the fresh
connection, so a restart costs callers nothing.

happybase's own ConnectionPool is not used: it connects in its constructor (so a service could
not start while HBase is down) and re-opens inside its error handler, which raises a second,
unrelated error while the gateway is still down.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import happybase
import Hbase_thrift
from thriftpy2.thrift import TApplicationException, TException
from thriftpy2.transport import TTransportException

from rowcast.config import HBaseSettings
from rowcast.deadlines import within_deadline
from rowcast.errors import RowcastError, StoreUnavailable

T = TypeVar("T")

#: Errors that mean "the store could not be reached or did not answer".
LOWER_ERRORS: tuple[type[BaseException], ...] = (
    TTransportException,
    TApplicationException,
    TException,
    socket.timeout,
    TimeoutError,
    ConnectionError,
    OSError,
)


def map_store_error(exc: BaseException) -> RowcastError:
    """Map a lower-level error to the domain error callers see."""
    if isinstance(exc, RowcastError):
        return exc
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if isinstance(message, bytes):
        message = message.decode(errors="replace")
    return StoreUnavailable(f"HBase unavailable: {type(exc).__name__}: {message}"[:500])


class HBaseClient:
    """Runs blocking happybase work on a bounded thread pool with deadlines and one retry."""

    def __init__(self, settings: HBaseSettings) -> None:
        self._settings = settings
        self._executor = ThreadPoolExecutor(
            max_workers=settings.pool_size, thread_name_prefix="hbase"
        )
        # One connection per worker thread at most; created lazily so that a service starts
        # (and reports UNAVAILABLE per call) while HBase is down.
        self._idle: queue.LifoQueue[happybase.Connection] = queue.LifoQueue()

    @property
    def settings(self) -> HBaseSettings:
        return self._settings

    def call(self, fn: Callable[[happybase.Connection], T], *, retry: bool = True) -> T:
        """Run fn with a pooled connection on this thread; errors mapped; one retry if allowed."""
        attempts = 2 if retry else 1
        for attempt in range(attempts):
            conn = self._acquire()
            try:
                conn.open()  # no-op when already open
                result = fn(conn)
            except RowcastError:
                self._idle.put(conn)
                raise
            except LOWER_ERRORS as exc:
                _close_quietly(conn)
                if attempt + 1 >= attempts:
                    raise map_store_error(exc) from exc
            else:
                self._idle.put(conn)
                return result
        raise AssertionError("unreachable")

    def _acquire(self) -> happybase.Connection:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return happybase.Connection(
                host=self._settings.host,
                port=self._settings.thrift_port,
                timeout=int(self._settings.timeout_s * 1000),
                autoconnect=False,
            )

    async def run(
        self,
        fn: Callable[[happybase.Connection], T],
        *,
        timeout_s: float | None = None,
        retry: bool = True,
    ) -> T:
        """Run fn off the event loop; give up with StoreUnavailable when timeout_s runs out."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, lambda: self.call(fn, retry=retry))
        if timeout_s is None:
            return await future
        budget = within_deadline(timeout_s)
        try:
            return await asyncio.wait_for(future, budget)
        except TimeoutError as exc:
            raise StoreUnavailable(
                f"HBase did not answer within {budget:.3f}s", retryable=False
            ) from exc

    def ping(self) -> bool:
        """One cheap round trip; True when the gateway answers."""
        try:
            self.call(lambda c: c.tables(), retry=False)
        except RowcastError:
            return False
        return True

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


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
