"""Streams a spool to the AuditService (`StreamDecisions`) and moves its cursor on each ack."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import grpc

from rowcast.aio import wait_event, within
from rowcast.spool.batches import check, encode_batch
from rowcast.spool.framing import Position
from rowcast.spool.spool import Spool
from rowcast.telemetry.domain import DECISIONS_DELIVERED, expose
from rowcast.v1 import audit_service_pb2 as audit_pb

log = logging.getLogger(__name__)

#: Batches sent but not yet acknowledged on one stream: keeps the AuditService busy while an
#: acknowledgement travels back, without re-sending much after a reconnect.
MAX_IN_FLIGHT = 4
BATCH_BYTES = 1 << 20
#: An acknowledgement slower than this means the AuditService hangs (e.g. SIGSTOPped): reconnect.
ACK_TIMEOUT_S = 30.0
#: How long an idle sender sleeps before looking at the spool again without being notified.
IDLE_POLL_S = 1.0
#: After a batch that was not full, wait this long before reading the next one, so that the
#: records of many calls travel in one stream message (and one acknowledgement, one cursor
#: save, one AuditService write) instead of a few each: delivery is not on any answer's path.
#: A backlog (full batches) is sent without waiting.
LINGER_S = 0.02
#: The stream's method; its requests are sent as the bytes spool/batches.py encodes.
STREAM_DECISIONS = (
    f"/{audit_pb.DESCRIPTOR.services_by_name['AuditService'].full_name}/StreamDecisions"
)
MIN_BACKOFF_S = 0.05
MAX_BACKOFF_S = 2.0

#: HTTP/2 keepalive notices a dead or stopped AuditService on an idle stream. The servers allow
#: pings every 10 s at most (server.SERVER_OPTIONS); stay above that.
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 15_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # gRPC's own reconnect backoff grows to 120 s by default: an AuditService restarted after
    # a long outage would then wait up to two minutes for its senders to come back.
    ("grpc.max_reconnect_backoff_ms", 2_000),
]


@dataclass(frozen=True)
class _InFlight:
    batch_id: int
    end: Position
    payloads: list[bytes]


class SpoolSender:
    """Delivers a spool's records to the AuditService in order and acknowledges them in it.

    One stream at a time; on any failure it waits (exponential backoff) and reconnects from the
    spool's cursor, so the unacknowledged tail is sent again: harmless, since the AuditService
    stores decisions idempotently by id.
    """

    def __init__(
        self,
        spool: Spool,
        target: str,
        executor: Executor,
        *,
        batch_size: int = 500,
        name: str = "audit-spool-sender",
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        """`credentials`: TLS to the AuditService (with the recorder's token as call
        credentials); None for a plain-text channel (--insecure)."""
        self._spool = spool
        self._target = target
        self._executor = executor
        self._batch_size = batch_size
        self._name = name
        self._credentials = credentials
        #: Why the AuditService last refused this sender's credentials (UNAUTHENTICATED or
        #: PERMISSION_DENIED), until a stream works again; None otherwise.
        self.refused: grpc.StatusCode | None = None
        self._data = asyncio.Event()
        self._acked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        #: Decisions acknowledged as stored.
        self.sent = 0
        #: Decisions the AuditService refused as malformed (kept under quarantine/).
        self.rejected = 0
        #: Streams opened after the first (reconnects).
        self.reconnects = 0
        expose(DECISIONS_DELIVERED)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    def notify(self) -> None:
        """New records are in the spool."""
        self._data.set()

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def drained(self) -> None:
        """Return once every record in the spool has been acknowledged."""
        while self._spool.pending_bytes() > 0:
            self._acked.clear()
            # Re-checked at least every 100 ms: an empty read can move the cursor too.
            await wait_event(self._acked, 0.1)

    async def _io(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _run(self) -> None:
        backoff = MIN_BACKOFF_S
        channel = (
            grpc.aio.insecure_channel(self._target, options=CHANNEL_OPTIONS)
            if self._credentials is None
            else grpc.aio.secure_channel(self._target, self._credentials, options=CHANNEL_OPTIONS)
        )
        async with channel:
            # Requests go out as encoded (no serializer): see spool/batches.py.
            stream: grpc.aio.StreamStreamMultiCallable[bytes, audit_pb.StreamDecisionsResponse]
            stream = channel.stream_stream(
                STREAM_DECISIONS,
                request_serializer=None,
                response_deserializer=audit_pb.StreamDecisionsResponse.FromString,
            )
            while True:
                started = time.monotonic()
                try:
                    await self._session(stream)
                except (grpc.aio.AioRpcError, ConnectionError, TimeoutError) as exc:
                    self._note_end(exc)
                except Exception:
                    # A bug or a spool I/O error: the sender must outlive it, or the spool
                    # would fill up and Predict stop. Records stay in the spool meanwhile.
                    log.exception("audit spool sender failed; retrying")
                if self._stopping:
                    raise asyncio.CancelledError
                self.reconnects += 1
                if time.monotonic() - started > 5.0:
                    backoff = MIN_BACKOFF_S  # the stream worked for a while
                    self.refused = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _note_end(self, exc: BaseException) -> None:
        """Log why a stream ended: at debug for what reconnecting cures (the AuditService
        restarting, a network blip), as an error, once per cause, when the AuditService refuses
        this server's credentials: decisions then pile up in the spool until they are fixed."""
        code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
        if code in _REFUSED:
            if code != self.refused:
                log.error(
                    "the AuditService at %s refuses this prediction server's audit stream "
                    "(%s): decisions stay in the spool until its recorder token or "
                    "certificate is fixed (docs/security.md)",
                    self._target,
                    _describe(exc),
                )
            self.refused = code
            return
        log.debug("audit stream to %s ended: %s", self._target, _describe(exc))

    async def _session(
        self, stream: grpc.aio.StreamStreamMultiCallable[bytes, audit_pb.StreamDecisionsResponse]
    ) -> None:
        """One stream: send batches from the cursor on, apply acknowledgements as they come."""
        call = stream()
        in_flight: collections.deque[_InFlight] = collections.deque()
        window = asyncio.Semaphore(MAX_IN_FLIGHT)
        sent_one = asyncio.Event()
        # Two plain tasks rather than a TaskGroup: Python 3.11's TaskGroup can swallow a
        # cancellation (stop) that races with a failing stream.
        loops = {
            asyncio.create_task(self._write_loop(call, in_flight, window, sent_one)),
            asyncio.create_task(self._read_loop(call, in_flight, window, sent_one)),
        }
        try:
            done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            call.cancel()
        for task in done:
            if not task.cancelled() and (exc := task.exception()) is not None:
                raise exc

    async def _write_loop(
        self,
        call: Any,
        in_flight: collections.deque[_InFlight],
        window: asyncio.Semaphore,
        sent_one: asyncio.Event,
    ) -> None:
        pos = self._spool.cursor
        batch_id = 0
        linger = False
        while True:
            await window.acquire()
            if linger:
                await asyncio.sleep(LINGER_S)
            self._data.clear()
            batch = await self._io(self._spool.read, pos, self._batch_size, BATCH_BYTES)
            if not batch.payloads:
                window.release()
                pos = batch.end
                await wait_event(self._data, IDLE_POLL_S)
                linger = True
                continue
            linger = len(batch.payloads) < self._batch_size
            checked = check(batch.payloads)
            if checked.unreadable:
                await self._quarantine(checked.unreadable, "unreadable")
            batch_id += 1
            in_flight.append(_InFlight(batch_id, batch.end, checked.readable))
            try:
                await call.write(encode_batch(batch_id, checked.readable))
            except asyncio.InvalidStateError as exc:
                # grpc.aio reports a stream that already failed (e.g. nothing listens) this way.
                raise ConnectionError(f"audit stream closed: {await call.code()}") from exc
            sent_one.set()
            pos = batch.end

    async def _read_loop(
        self,
        call: Any,
        in_flight: collections.deque[_InFlight],
        window: asyncio.Semaphore,
        sent_one: asyncio.Event,
    ) -> None:
        while True:
            if not in_flight:
                sent_one.clear()
                await sent_one.wait()
            response = await within(call.read(), ACK_TIMEOUT_S)
            if response is grpc.aio.EOF:
                raise ConnectionError("the AuditService closed the stream")
            head = in_flight.popleft()
            if response.batch_id != head.batch_id:
                raise ConnectionError(
                    f"acknowledgement for batch {response.batch_id}, expected {head.batch_id}"
                )
            if response.rejected:
                for r in response.rejected:
                    log.error("AuditService refused decision %s: %s", r.decision_id, r.reason)
                rejected = [head.payloads[r.index] for r in response.rejected]
                await self._quarantine(rejected, "rejected")
                self.rejected += len(rejected)
            await self._io(self._spool.acknowledge, head.end)
            self.sent += response.recorded_count
            DECISIONS_DELIVERED.inc(response.recorded_count)
            self._acked.set()
            window.release()

    async def _quarantine(self, payloads: list[bytes], why: str) -> None:
        name = f"{why}-{time.time_ns()}.records"
        path = await self._io(self._spool.quarantine_records, name, payloads)
        log.error("audit spool: %d %s records kept in %s", len(payloads), why, path)


#: Codes that no reconnect can cure: the sender's token or role is wrong (expired, revoked).
_REFUSED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"
