"""Delivers the decisions a prediction server makes to the AuditService, off the hot path.

Predict hands its decisions to `record`, which only appends to a bounded in-memory queue; a
background task sends batches with `RecordDecisions` and retries with backoff while the
AuditService or HBase is down (writes are idempotent by decision id, so a retry never
duplicates). When the queue is full, `record` raises Overloaded (RESOURCE_EXHAUSTED) rather
than drop a record. The queue lives in memory: a crash of the prediction server loses what it
holds; the durable spool that closes that gap is a later step (see docs/audit.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import grpc

from rowcast.convert import decision_to_pb
from rowcast.core.records import Decision
from rowcast.errors import Overloaded
from rowcast.v1 import audit_service_pb2 as audit_pb
from rowcast.v1 import audit_service_pb2_grpc as audit_grpc

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 10.0
MAX_BACKOFF_S = 2.0


class AuditSink:
    """Buffers decision records and sends them to the AuditService in batches, with retries."""

    def __init__(self, target: str, limit: int, batch_size: int) -> None:
        self._target = target
        self._queue: asyncio.Queue[Decision] = asyncio.Queue(maxsize=limit)
        self._batch_size = batch_size
        self._channel: grpc.aio.Channel | None = None
        self._task: asyncio.Task[None] | None = None
        #: Decisions delivered so far.
        self.sent = 0

    async def record(self, decisions: Sequence[Decision]) -> None:
        """Accept decisions for delivery; returns once they are queued (all or none)."""
        if self._queue.maxsize - self._queue.qsize() < len(decisions):
            raise Overloaded(
                "audit queue is full (the AuditService is down or slow); not serving decisions "
                "that could not be audited"
            )
        for decision in decisions:
            self._queue.put_nowait(decision)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def start(self) -> None:
        self._channel = grpc.aio.insecure_channel(self._target)
        self._task = asyncio.create_task(self._run(), name="audit-sink")

    async def stop(self, drain_timeout_s: float) -> None:
        """Try to deliver what is queued within drain_timeout_s, then stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained(), drain_timeout_s)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._channel is not None:
            await self._channel.close()
        if self.pending:
            log.warning("stopped with %d undelivered audit records", self.pending)

    async def _drained(self) -> None:
        await self._queue.join()

    async def _run(self) -> None:
        assert self._channel is not None
        stub = audit_grpc.AuditServiceStub(self._channel)
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            request = audit_pb.RecordDecisionsRequest(decisions=[decision_to_pb(d) for d in batch])
            backoff = 0.05
            while True:
                try:
                    await stub.RecordDecisions(request, timeout=SEND_TIMEOUT_S)
                    break
                except grpc.aio.AioRpcError as exc:
                    log.debug("audit delivery failed (%s); retrying", exc.code())
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_S)
            self.sent += len(batch)
            for _ in batch:
                self._queue.task_done()
