"""Records the decisions a prediction server makes: durably in a local spool before Predict
answers, then delivered to the AuditService in the background.

`record` appends the decisions to the spool file (one `write`, so they are in the OS page cache
and survive any crash of this process); with durability `fsync` it also waits for a group
commit (one fsync shared by every caller waiting at that moment), so they survive a machine
crash too. A sender streams the spool to the AuditService (`StreamDecisions`) and deletes what
was acknowledged; while the AuditService or HBase is down, the spool grows, and when it reaches
its size limit `record` raises Overloaded (RESOURCE_EXHAUSTED) rather than drop a record.
See docs/audit.md for what each level promises and costs.

Group append: the decisions of every call answered in one event-loop turn are appended together,
in one `write`, at the end of the turn, and each call returns only once that write is done (the
promise is unchanged: in the page cache before the answer). Under load a turn answers many calls,
so the spool costs one system call and one lock per turn instead of one per call.

With a chain key, each decision is linked into this sink's audit chain (core/chain.py) before
it is spooled: one chain per sink start, its state advanced only once the spool took the
turn's group, so a refused group leaves no gap in the sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import grpc

from rowcast.aio import within
from rowcast.convert import decision_to_pb
from rowcast.core.chain import Chain
from rowcast.core.records import Decision
from rowcast.errors import Overloaded
from rowcast.security.chain_key import load_chain_key
from rowcast.spool.files import LOCK_FILE, list_segments
from rowcast.spool.group_commit import GroupCommitter
from rowcast.spool.sender import SpoolSender
from rowcast.spool.spool import (
    DEFAULT_SEGMENT_BYTES,
    RecoveryReport,
    Spool,
    SpoolFull,
    SpoolLocked,
)
from rowcast.telemetry.tracing import current_traceparent

log = logging.getLogger(__name__)

Durability = Literal["process", "fsync"]
DURABILITY_LEVELS: tuple[Durability, ...] = ("process", "fsync")


def spool_directory(home: Path, port: int) -> Path:
    """Where a prediction server keeps its spool: <home>/spool/prediction-<port>/, so a server
    restarted on its port finds what it left. A server on an ephemeral port (0) gets a
    directory of its own; what it leaves is adopted by the next server started (see start)."""
    instance = (
        f"prediction-{port}" if port else f"prediction-pid{os.getpid()}-{uuid.uuid4().hex[:8]}"
    )
    return home / "spool" / instance


@dataclass(frozen=True)
class SpoolConfig:
    """Where a prediction server spools its decisions, how durably, and how much at most."""

    directory: Path
    durability: Durability = "process"
    #: Bytes on disk beyond which `record` refuses new decisions (Overloaded).
    max_bytes: int = 1 << 30
    segment_bytes: int = DEFAULT_SEGMENT_BYTES
    #: Also deliver spools that other, dead servers left in sibling directories.
    adopt_orphans: bool = True
    #: The audit chain key (security/chain_key.py; created at start when missing); None: the
    #: decisions are not chained.
    chain_key_file: Path | None = None

    def __post_init__(self) -> None:
        if self.durability not in DURABILITY_LEVELS:
            raise ValueError(
                f"audit durability must be one of {DURABILITY_LEVELS}, got {self.durability!r}"
            )


class _Turn:
    """The records of the calls answered in one event-loop turn: appended together at its end.

    Each call waits on a future of its own (a cancelled caller must not cancel the others);
    the future's result is the spool ticket, or the reason the append failed."""

    __slots__ = ("chain", "payloads", "waiters")

    def __init__(self, chain: Chain | None) -> None:
        #: The chain as it is once this turn's records are kept (None: not chained).
        self.chain = chain
        self.payloads: list[bytes] = []
        self.waiters: list[asyncio.Future[int | str]] = []


class AuditSink:
    """Makes each decision durable in the local spool, and keeps the spool flowing to the
    AuditService."""

    def __init__(
        self,
        target: str,
        spool: SpoolConfig,
        batch_size: int = 500,
        *,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        """`credentials`: how the sender reaches the AuditService (TLS + the recorder's
        token); None: plain text (--insecure)."""
        self.config = spool
        self._credentials = credentials
        self._spool = Spool(
            spool.directory,
            max_bytes=spool.max_bytes,
            segment_bytes=spool.segment_bytes,
            defer_close=spool.durability == "fsync",
        )
        # One thread for spool I/O (reads, acknowledgements) and one for fsync, so a slow
        # fsync never holds up delivery and vice versa.
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-spool-io")
        self._fsync = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-spool-fsync")
        self._sender = SpoolSender(
            self._spool, target, self._io, batch_size=batch_size, credentials=credentials
        )
        self._committer = (
            GroupCommitter(self._spool, self._fsync) if spool.durability == "fsync" else None
        )
        self._target = target
        self._batch_size = batch_size
        self._adopted: list[tuple[Spool, SpoolSender, asyncio.Task[None]]] = []
        self.recovery: RecoveryReport | None = None
        #: This start's audit chain (None without a key, or before start).
        self.chain: Chain | None = None
        #: The records of the current event-loop turn, not yet appended.
        self._turn: _Turn | None = None
        #: Group appends made (one per event-loop turn that recorded anything).
        self.appends = 0

    async def record(self, decisions: Sequence[Decision]) -> None:
        """Return once the decisions are in the spool (all or none); Overloaded when full.
        Each carries the trace context of the call that made it, when that call is traced,
        and its link in the audit chain."""
        turn = self._turn
        loop = asyncio.get_running_loop()
        if turn is None:
            turn = self._turn = _Turn(self.chain)
            loop.call_soon(self._append_turn)
        if turn.chain is not None:
            # Linked in the order the turn's records will be written (nothing awaits between
            # linking and joining the turn); the chain advances once the turn is appended.
            decisions, turn.chain = turn.chain.link(decisions)
        parent = current_traceparent()
        if parent:
            messages = [decision_to_pb(d) for d in decisions]
            for message in messages:
                message.trace_parent = parent
            turn.payloads.extend(m.SerializeToString() for m in messages)
        else:
            turn.payloads.extend(decision_to_pb(d).SerializeToString() for d in decisions)
        waiter: asyncio.Future[int | str] = loop.create_future()
        turn.waiters.append(waiter)
        outcome = await waiter
        if isinstance(outcome, str):
            raise Overloaded(outcome)
        if self._committer is not None:
            try:
                await self._committer.wait(outcome)
            except OSError as exc:
                raise Overloaded(f"could not fsync the audit spool: {exc}") from exc

    def _append_turn(self) -> None:
        """Append the turn's records in one write and wake its callers (end of the turn)."""
        turn, self._turn = self._turn, None
        if turn is None:
            return
        outcome: int | str
        try:
            outcome = self._spool.append(turn.payloads)
        except SpoolFull as exc:
            outcome = f"{exc}; not serving decisions that could not be audited"
        except OSError as exc:
            outcome = f"could not write the audit spool: {exc}"
        else:
            self.appends += 1
            if self.chain is not None and turn.chain is not None:
                self.chain.advance(turn.chain)
            self._sender.notify()
        for waiter in turn.waiters:
            if not waiter.done():
                waiter.set_result(outcome)

    async def delivered(self) -> None:
        """Return once every decision spooled so far is acknowledged by the AuditService."""
        await self._sender.drained()

    @property
    def sent(self) -> int:
        """Decisions the AuditService acknowledged as stored."""
        return self._sender.sent

    @property
    def refused(self) -> grpc.StatusCode | None:
        """Why the AuditService refuses this server's credentials (UNAUTHENTICATED or
        PERMISSION_DENIED) until a stream works again; None while it accepts them."""
        return self._sender.refused

    @property
    def pending_bytes(self) -> int:
        """Bytes of spooled decisions not yet acknowledged."""
        return self._spool.pending_bytes()

    @property
    def quarantined(self) -> int:
        """Damaged spool tails and refused or unreadable record groups set aside so far."""
        return self._spool.quarantined_files + self._sender.rejected

    async def start(self) -> None:
        """Open the spool (delivering what an earlier run left) and start sending."""
        loop = asyncio.get_running_loop()
        key_file = self.config.chain_key_file
        if key_file is not None:
            self.chain = Chain(await loop.run_in_executor(self._io, load_chain_key, key_file))
        self.recovery = await loop.run_in_executor(self._io, self._spool.open)
        if self._committer is not None:
            self._committer.start()
        self._sender.start()
        if self.config.adopt_orphans:
            await self._adopt_orphans()

    async def _adopt_orphans(self) -> None:
        """Deliver the spools of servers that died and did not come back on their port.

        A spool directory nobody holds the lock of is an orphan: open it read-only (holding
        its lock, so two adopters never send the same spool), send it until it is empty, then
        release it."""
        loop = asyncio.get_running_loop()
        root = self.config.directory.parent
        siblings = await loop.run_in_executor(self._io, _sibling_dirs, root, self.config.directory)
        for directory in siblings:
            orphan = Spool(directory, max_bytes=self.config.max_bytes, writable=False)
            try:
                report = await loop.run_in_executor(self._io, orphan.open)
            except SpoolLocked:
                continue  # a live server owns it
            except OSError as exc:
                log.warning("could not open orphaned audit spool %s: %s", directory, exc)
                continue
            if not report.pending_records:
                await loop.run_in_executor(self._io, orphan.close)
                continue
            log.info(
                "adopting orphaned audit spool %s: %d undelivered decisions",
                directory,
                report.pending_records,
            )
            sender = SpoolSender(
                orphan,
                self._target,
                self._io,
                batch_size=self._batch_size,
                name="audit-adopted",
                credentials=self._credentials,
            )
            sender.start()
            task = asyncio.create_task(self._release_when_drained(orphan, sender))
            self._adopted.append((orphan, sender, task))

    async def _release_when_drained(self, orphan: Spool, sender: SpoolSender) -> None:
        await sender.drained()
        await sender.stop()
        await asyncio.get_running_loop().run_in_executor(self._io, orphan.close)
        log.info("orphaned audit spool %s delivered", orphan.directory)

    async def stop(self, drain_timeout_s: float) -> None:
        """Deliver what is spooled within drain_timeout_s, then stop; the rest stays spooled
        and is delivered by the next start."""
        with contextlib.suppress(TimeoutError):
            await within(self._sender.drained(), drain_timeout_s)
        await self._sender.stop()
        if self._committer is not None:
            await self._committer.stop()
        loop = asyncio.get_running_loop()
        for orphan, sender, task in self._adopted:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await sender.stop()
                await loop.run_in_executor(self._io, orphan.close)
        self._adopted.clear()
        await loop.run_in_executor(self._io, self._spool.close)
        self._io.shutdown(wait=False)
        self._fsync.shutdown(wait=False)
        left = self._spool.pending_bytes()
        if left:
            log.warning(
                "audit sink stopped with %d undelivered bytes in %s (sent on next start)",
                left,
                self._spool.directory,
            )


def _sibling_dirs(root: Path, own: Path) -> list[Path]:
    """Other spool directories beside own: only those with a spool's lock file or segments."""
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir()
        and p.resolve() != own.resolve()
        and ((p / LOCK_FILE).exists() or list_segments(p))
    )
