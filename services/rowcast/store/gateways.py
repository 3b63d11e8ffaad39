"""No single gateway: the set of Thrift gateways a store client spreads its calls over, their
health, and the failover loop that moves a call to the next gateway within its deadline.

Every gateway ("host:port") of one kind (Thrift1 or Thrift2) is in one `GatewaySet`. Calls go
round robin over the healthy ones; a gateway whose attempt failed at the transport (refused,
reset, timed out: it is dead, restarting or hung) is marked down and comes last in the order
until a background probe finds it answering again (every `gateway_retry_s`), so a dead gateway
costs one attempt per client, not one per call. When no gateway is healthy every gateway is
still tried (standalone HBase has one: while it restarts, calls fail as they always did).

`FailoverPool.attempt` is the loop: each attempt goes to the next gateway with a socket timeout
of min(attempt timeout, time left) (the time left when there is only one gateway), so a gateway
that accepts connections but never answers (SIGSTOP) costs at most one attempt timeout and never
holds a call past its deadline. A call that is not idempotent (`retry=False`: checkAndPut, an
append) fails over only when the request provably never reached a gateway (the connection
could not be opened); once it may have been sent it is never replayed. An HBase-side IOError
(a region moving) is not the gateway's fault: the gateway stays up, and an idempotent call
tries the next one while time is left.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final, Generic, TypeVar

from thriftpy2.transport import TTransportException

from rowcast.errors import RowcastError, StoreUnavailable
from rowcast.store.idl import Hbase_thrift, hbase2
from rowcast.telemetry.domain import HBASE_GATEWAY_UP

C = TypeVar("C")
T = TypeVar("T")

#: Errors with which HBase itself answered through a working gateway.
_HBASE_ANSWERED: Final = (Hbase_thrift.IOError, hbase2.TIOError)
#: A socket timeout set to the time left fires a hair before the deadline.
_DEADLINE_SLACK_S: Final = 0.005


class Gateway:
    """One Thrift gateway: where it is, whether it answered last time, and its idle
    connections."""

    __slots__ = ("address", "down_since", "host", "idle", "port", "up")

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.address = address
        self.host = host
        self.port = int(port)
        self.up = True
        self.down_since = 0.0
        #: Open connections not in use (LIFO: the warmest first).
        self.idle: queue.LifoQueue[object] = queue.LifoQueue()

    def __repr__(self) -> str:
        return f"Gateway({self.address!r}, up={self.up})"


class GatewaySet:
    """Which gateway each attempt goes to: round robin over the healthy ones, the ones marked
    down last; re-admits a down one when the probe reaches it."""

    def __init__(
        self,
        addresses: Sequence[str],
        *,
        retry_s: float,
        probe: Callable[[Gateway], None] | None = None,
    ) -> None:
        if not addresses:
            raise ValueError("a gateway set needs at least one gateway")
        self.gateways: tuple[Gateway, ...] = tuple(Gateway(a) for a in dict.fromkeys(addresses))
        self._retry_s = retry_s
        self._probe = probe
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._prober: threading.Thread | None = None
        self._closed = threading.Event()
        for gateway in self.gateways:
            HBASE_GATEWAY_UP.labels(gateway.address).set(1)

    def order(self) -> list[Gateway]:
        """The gateways one call tries, in order: the healthy ones starting at the next turn,
        then those marked down, longest down first."""
        gateways = self.gateways
        if len(gateways) == 1:
            return [gateways[0]]
        start = next(self._turn) % len(gateways)
        rotated = gateways[start:] + gateways[:start]
        up = [g for g in rotated if g.up]
        down = sorted((g for g in rotated if not g.up), key=lambda g: g.down_since)
        return up + down

    def healthy(self) -> list[Gateway]:
        return [g for g in self.gateways if g.up]

    def failed(self, gateway: Gateway) -> None:
        """Mark `gateway` down (it did not answer); the probe re-admits it."""
        with self._lock:
            if not gateway.up:
                return
            gateway.up = False
            gateway.down_since = time.monotonic()
            HBASE_GATEWAY_UP.labels(gateway.address).set(0)
            if self._probe is not None and (self._prober is None or not self._prober.is_alive()):
                self._prober = threading.Thread(
                    target=self._probe_loop, name="gateway-probe", daemon=True
                )
                self._prober.start()

    def answered(self, gateway: Gateway) -> None:
        """`gateway` answered: healthy again."""
        if gateway.up:
            return
        with self._lock:
            gateway.up = True
            HBASE_GATEWAY_UP.labels(gateway.address).set(1)

    def _probe_loop(self) -> None:
        # Runs while any gateway is down; a new one starts when another goes down later.
        assert self._probe is not None
        while not self._closed.wait(self._retry_s):
            down = [g for g in self.gateways if not g.up]
            if not down:
                with self._lock:
                    if all(g.up for g in self.gateways):
                        self._prober = None
                        return
                continue
            for gateway in down:
                # Any failure just leaves it down until the next round.
                with contextlib.suppress(Exception):
                    self._probe(gateway)
                    self.answered(gateway)

    def close(self) -> None:
        self._closed.set()


class FailoverPool(Generic[C]):
    """Pooled connections per gateway, and the loop that runs one call on them with failover
    (see the module docstring)."""

    def __init__(
        self,
        gateways: GatewaySet,
        *,
        connect: Callable[[Gateway, float], C],
        set_timeout: Callable[[C, float], None],
        close: Callable[[C], None],
        map_error: Callable[[BaseException], RowcastError | None],
    ) -> None:
        self.gateways = gateways
        self._connect = connect
        self._set_timeout = set_timeout
        self._close = close
        self._map_error = map_error

    def attempt(
        self,
        fn: Callable[[C], T],
        *,
        deadline: float | None,
        attempt_timeout_s: float,
        retry: bool,
        observe: Callable[[Gateway, float, RowcastError | None, str | None], None],
    ) -> T:
        """Run fn on a connection to one gateway after another until it succeeds, the time
        before `deadline` (monotonic; None: no overall deadline) runs out, or the error is not
        one to fail over from. `observe(gateway, seconds, error, kind)` records each attempt.

        The first pass tries every gateway once, plus the first one again when `retry` allows
        (a pooled connection may be stale after a gateway restart: a fresh one then succeeds).
        When an idempotent call with a deadline saw an attempt time out, it goes round again
        while time is left, each pass allowing twice the attempt timeout of the last: when
        every gateway is merely slow (a loaded machine), a longer attempt still answers in
        time. Gateways that only refuse are not hammered until the deadline."""
        last: StoreUnavailable | None = None
        # With one gateway there is nowhere to fail over to: an attempt may use all the time.
        single = len(self.gateways.gateways) == 1
        order = self.gateways.order()
        rounds = [*order, order[0]] if retry else order
        attempt_s = attempt_timeout_s
        while True:
            timed_out = False
            for gateway in rounds:
                timeout = attempt_s
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= _DEADLINE_SLACK_S:
                        break
                    timeout = left if single else min(timeout, left)
                conn = self._take(gateway)
                reached = conn is not None
                started = time.perf_counter()
                try:
                    if conn is None:
                        conn = self._connect(gateway, timeout)
                        reached = True
                    else:
                        self._set_timeout(conn, timeout)
                    result = fn(conn)
                except RowcastError:
                    # fn's own verdict (HBase answered): the connection is sound.
                    if conn is not None:
                        gateway.idle.put(conn)
                    observe(gateway, time.perf_counter() - started, None, None)
                    raise
                except Exception as exc:
                    # Its state is unknown (a reply half read?): never reuse it.
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            self._close(conn)
                    mapped = self._map_error(exc)
                    timed_out = timed_out or _is_timeout(exc)
                    kind = "timeout" if _is_timeout(exc) else None
                    observe(gateway, time.perf_counter() - started, mapped, kind)
                    if not isinstance(mapped, StoreUnavailable):
                        if mapped is None:
                            raise  # not the store's: a local file error, a bug
                        raise mapped from exc
                    if not isinstance(exc, _HBASE_ANSWERED):
                        self.gateways.failed(gateway)
                        self.discard_idle(gateway)
                    if reached and not retry:
                        raise mapped from exc
                    last = mapped
                    last.__cause__ = exc
                    continue
                else:
                    gateway.idle.put(conn)
                    observe(gateway, time.perf_counter() - started, None, None)
                    self.gateways.answered(gateway)
                    return result
            out_of_time = deadline is not None and time.monotonic() >= deadline - _DEADLINE_SLACK_S
            if out_of_time or not (timed_out and retry and deadline is not None):
                break
            rounds = self.gateways.order()
            attempt_s *= 2
        if deadline is not None and time.monotonic() >= deadline - _DEADLINE_SLACK_S:
            # The caller's time ran out: retrying the call would start after it stopped waiting.
            ran_out = StoreUnavailable(
                "HBase did not answer within the deadline"
                + (f" (last attempt: {last})" if last is not None else ""),
                retryable=False,
            )
            raise ran_out from (last.__cause__ if last is not None else None)
        if last is not None:
            raise last
        raise StoreUnavailable("no time left for the HBase call", retryable=False)

    def _take(self, gateway: Gateway) -> C | None:
        try:
            return gateway.idle.get_nowait()  # type: ignore[return-value]
        except queue.Empty:
            return None

    def discard_idle(self, gateway: Gateway) -> None:
        """Close the idle connections of a gateway that went down (they are likely dead)."""
        while True:
            conn = self._take(gateway)
            if conn is None:
                return
            with contextlib.suppress(Exception):
                self._close(conn)

    def close(self) -> None:
        """Close every idle connection and stop the probe."""
        self.gateways.close()
        for gateway in self.gateways.gateways:
            self.discard_idle(gateway)


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError):
        return True
    if isinstance(exc, TTransportException) and exc.type == TTransportException.TIMED_OUT:
        return True
    return "timed out" in str(exc)
