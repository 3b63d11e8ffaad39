"""Predict load on loopback that remembers exactly what each client received.

Every request carries a subject of its own (`<run>-<n>`, never reused, also not by a retry), so
the audit's subject index says how many times one request is on record. Only answers a client
actually got count as acknowledged; a failed call (a server killed mid-call, a deadline) is
counted by status and the worker moves on with a new request.

With `record_calls` the driver also keeps every call's timing and status (`CallRecord`): the
serving chaos run judges latency by it. With `open_loop` and a rate, calls follow a fixed
schedule whatever the answers' speed, and a call's latency counts from its slot in that
schedule (its intended start), so a stall is not hidden by the calls it kept from being sent.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from rowcast.aio import wait_event
from rowcast.convert import SOURCE_FROM_PB
from rowcast_client import AsyncRowcastClient, Credentials, RowcastClientError, Targets

#: Seconds a Predict call may take; under faults a slower answer counts as not received.
PREDICT_TIMEOUT_S = 2.0
#: Pause of a worker after a failed call, so a dead server is not hammered.
FAILURE_PAUSE_S = 0.05


@dataclass(frozen=True, slots=True)
class Received:
    """One answer a client received: the request's subject and inputs, and the response."""

    decision_id: str
    subject: str
    balance: float
    income: float
    student: str
    model_version: int
    output: float
    key: str
    #: Source as the audit store writes it ("hbase", "cache", "fallback").
    source: str
    server: str

    @property
    def features(self) -> dict[str, float | str]:
        return {"balance": self.balance, "income": self.income, "student": self.student}

    def to_json(self) -> str:
        return json.dumps(
            {
                "decision_id": self.decision_id,
                "subject": self.subject,
                "features": self.features,
                "model_version": self.model_version,
                "output": self.output,
                "key": self.key,
                "source": self.source,
                "server": self.server,
            }
        )


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One Predict call: when it was meant to start, started and ended (monotonic seconds), and
    how it ended ("OK", a gRPC status name, or the exception's type name)."""

    intended_s: float
    start_s: float
    end_s: float
    status: str
    target: str

    @property
    def latency_s(self) -> float:
        """From the intended start: includes the wait for a slot a slow answer held up."""
        return self.end_s - self.intended_s


@dataclass
class LoadStats:
    attempted: int = 0
    failed: Counter[str] = field(default_factory=Counter)


class LoadDriver:
    """Runs `concurrency` workers calling Predict over every prediction server until stopped;
    keeps (and appends to a JSON-lines file) every answer received."""

    def __init__(
        self,
        model: str,
        targets: list[str],
        run_id: str,
        *,
        concurrency: int,
        seed: int,
        record_file: Path,
        max_rate: float | None = None,
        credentials: Credentials | None = None,
        timeout_s: float = PREDICT_TIMEOUT_S,
        record_calls: bool = False,
        open_loop: bool = False,
    ) -> None:
        self._model = model
        #: TLS and the token the load calls with (None: plain text, no token).
        self._credentials = credentials
        self._targets = targets
        self._run_id = run_id
        self._concurrency = concurrency
        self._rng = random.Random(seed)
        self._record_file = record_file
        self._interval = 1.0 / max_rate if max_rate else 0.0
        self._timeout_s = timeout_s
        self._record_calls = record_calls
        self._open_loop = open_loop
        self._next_slot = 0.0
        self._numbers = itertools.count()
        self._stop = asyncio.Event()
        self._reached = asyncio.Event()
        self._wanted = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._out: IO[str] | None = None
        self.received: list[Received] = []
        #: Every call's timing and status (only with record_calls).
        self.calls: list[CallRecord] = []
        self.stats = LoadStats()

    @property
    def acknowledged(self) -> int:
        return len(self.received)

    def start(self) -> None:
        self._record_file.parent.mkdir(parents=True, exist_ok=True)
        self._out = self._record_file.open("a", encoding="utf-8")
        self._stop.clear()
        self._tasks = [
            asyncio.create_task(self._worker(i), name=f"chaos-load-{i}")
            for i in range(self._concurrency)
        ]

    async def stop(self) -> None:
        """Stop the workers; calls in flight finish (or fail) first."""
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._out is not None:
            self._out.close()
            self._out = None

    async def wait_for(self, acknowledged: int) -> None:
        """Return once at least `acknowledged` answers were received."""
        self._wanted = acknowledged
        self._reached.clear()
        if self.acknowledged < acknowledged:
            await self._reached.wait()

    async def _paced(self) -> float:
        """Wait for the next call's slot; returns its intended start."""
        now = time.monotonic()
        if not self._interval:
            return now
        # Closed loop: a slot missed while every worker waited is dropped. Open loop: the
        # schedule stands, and late calls go at once, their lateness counted in their latency.
        slot = (self._next_slot or now) if self._open_loop else max(self._next_slot, now)
        self._next_slot = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)
        return slot

    async def _worker(self, index: int) -> None:
        clients = [
            AsyncRowcastClient(
                Targets(prediction=t, credentials=self._credentials), timeout_s=self._timeout_s
            )
            for t in self._targets
        ]
        turn = index
        try:
            while not self._stop.is_set():
                intended = await self._paced()
                turn += 1
                target = turn % len(clients)
                ok = await self._one(clients[target], self._targets[target], intended)
                if not ok:
                    await wait_event(self._stop, FAILURE_PAUSE_S)
        finally:
            for c in clients:
                await c.close()

    async def _one(self, client: AsyncRowcastClient, target: str, intended: float) -> bool:
        subject = f"{self._run_id}-{next(self._numbers)}"
        balance = round(self._rng.uniform(0.0, 2700.0), 2)
        income = round(self._rng.uniform(700.0, 75_000.0), 2)
        student = self._rng.choice(("Yes", "No"))
        self.stats.attempted += 1
        started = time.monotonic()
        try:
            r = await client.predict(
                self._model,
                {"balance": balance, "income": income, "student": student},
                subject=subject,
            )
        except RowcastClientError as exc:
            self._failed(exc.code.name, intended, started, target)
            return False
        except Exception as exc:
            # Not a status from a server (e.g. a channel torn down mid-call): the request
            # was not answered, which is all the load needs to know.
            self._failed(type(exc).__name__, intended, started, target)
            return False
        if self._record_calls:
            self.calls.append(CallRecord(intended, started, time.monotonic(), "OK", target))
        got = Received(
            decision_id=r.decision_id,
            subject=subject,
            balance=balance,
            income=income,
            student=student,
            model_version=r.model_version,
            output=r.output,
            key=r.key,
            source=SOURCE_FROM_PB[r.source].value,
            server=target,
        )
        self.received.append(got)
        if len(self.received) >= self._wanted:
            self._reached.set()
        if self._out is not None:
            self._out.write(got.to_json() + "\n")
        return True

    def _failed(self, status: str, intended: float, started: float, target: str) -> None:
        self.stats.failed[status] += 1
        if self._record_calls:
            self.calls.append(CallRecord(intended, started, time.monotonic(), status, target))
