"""Group commit for `fsync` durability: every caller waiting when an fsync starts shares it."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from concurrent.futures import Executor

from rowcast.spool.spool import Spool


class GroupCommitter:
    """Runs one fsync at a time for a spool and wakes every caller whose records it covered.

    While one fsync runs, newly appended records wait for the next one, so under load the
    number of fsyncs per second stays near 1 / (fsync latency) however many callers there are.
    """

    def __init__(self, spool: Spool, executor: Executor) -> None:
        self._spool = spool
        self._executor = executor
        self._durable = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: fsync calls made (for the benchmark and metrics).
        self.syncs = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-spool-fsync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(OSError("audit spool closed before fsync"))
        self._waiters.clear()

    async def wait(self, ticket: int) -> None:
        """Return once the records appended up to ticket are fsync'd (OSError if fsync fails)."""
        if ticket <= self._durable:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((ticket, fut))
        self._wake.set()
        await fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                covered = await loop.run_in_executor(self._executor, self._spool.sync)
            except OSError as exc:
                # After a failed fsync the kernel may have dropped the dirty pages: nobody
                # waiting can be told their record is safe.
                while self._waiters:
                    _, fut = self._waiters.popleft()
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.syncs += 1
            self._durable = max(self._durable, covered)
            while self._waiters and self._waiters[0][0] <= covered:
                _, fut = self._waiters.popleft()
                if not fut.done():
                    fut.set_result(None)
            if self._waiters:
                self._wake.set()
