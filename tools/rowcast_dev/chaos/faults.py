"""The fault schedule of a chaos run: kill -9 the AuditService, a prediction server or an HBase
JVM, or SIGSTOP HBase for a few seconds; each fault ends with what it broke running again.

Faults come in rounds; every round has each kind once, in a seeded random order, so a run with
N rounds has N of each. HBase kills alternate between the master JVM (master, regionserver and
ZooKeeper: the whole store) and the Thrift1 gateway the services talk to; prediction kills go
round the prediction servers.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from rowcast_dev.chaos.cluster import Cluster
from rowcast_dev.hbase.runtime import Component

log = logging.getLogger(__name__)

#: Fault targets that are HBase JVMs, and the runtime's name of each.
HBASE_JVMS: dict[str, Component] = {"hbase-master": "master", "hbase-thrift": "thrift"}


class FaultKind(enum.Enum):
    KILL_AUDIT = "kill-audit"
    KILL_PREDICTION = "kill-prediction"
    KILL_HBASE = "kill-hbase"
    STOP_HBASE = "stop-hbase"


@dataclass(frozen=True)
class FaultTiming:
    """Seconds, each drawn uniformly from (low, high)."""

    #: Between the end of one fault and the next.
    pause_s: tuple[float, float] = (1.0, 4.0)
    #: How long a killed service stays dead before it is started again.
    dead_s: tuple[float, float] = (0.5, 3.0)
    #: How long HBase stays stopped (SIGSTOP) before SIGCONT.
    stopped_s: tuple[float, float] = (2.0, 6.0)


@dataclass(frozen=True)
class FaultEvent:
    """One fault as it happened."""

    kind: FaultKind
    #: What got the signal: "audit", "prediction-1", "hbase-master", "hbase-thrift".
    target: str
    signal: str
    #: Seconds after the load started.
    at_s: float
    #: Seconds from the signal until the target served again (restarted / resumed and ready).
    outage_s: float

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "target": self.target,
            "signal": self.signal,
            "at_s": round(self.at_s, 2),
            "outage_s": round(self.outage_s, 2),
        }


class FaultInjector:
    """Injects one fault at a time into a cluster and restores what it broke."""

    def __init__(
        self, cluster: Cluster, rng: random.Random, timing: FaultTiming, epoch: float
    ) -> None:
        self._cluster = cluster
        self._rng = rng
        self._timing = timing
        self._epoch = epoch
        self.events: list[FaultEvent] = []

    @property
    def kills(self) -> int:
        return sum(1 for e in self.events if e.signal == "SIGKILL")

    @property
    def stops(self) -> int:
        return sum(1 for e in self.events if e.signal == "SIGSTOP")

    def kinds_done(self) -> set[FaultKind]:
        return {e.kind for e in self.events}

    def kills_by_target(self) -> dict[str, int]:
        return dict(Counter(e.target for e in self.events if e.signal == "SIGKILL"))

    def schedule(self) -> Iterator[tuple[FaultKind, str]]:
        """Endless (kind, target) pairs: rounds of every kind once, shuffled."""
        hbase_targets = list(HBASE_JVMS)
        predictions = len(self._cluster.predictions)
        round_number = 0
        while True:
            kinds = list(FaultKind)
            self._rng.shuffle(kinds)
            for kind in kinds:
                if kind is FaultKind.KILL_HBASE:
                    yield kind, hbase_targets[round_number % len(hbase_targets)]
                elif kind is FaultKind.KILL_PREDICTION:
                    yield kind, f"prediction-{round_number % predictions}"
                elif kind is FaultKind.KILL_AUDIT:
                    yield kind, "audit"
                else:
                    yield kind, "hbase-master"
            round_number += 1

    async def pause(self) -> None:
        await asyncio.sleep(self._rng.uniform(*self._timing.pause_s))

    async def inject(self, kind: FaultKind, target: str) -> FaultEvent:
        """Inject the fault and wait until the target serves again."""
        at = time.monotonic()
        log.info("fault: %s %s", kind.value, target)
        if kind is FaultKind.STOP_HBASE:
            await self._stop_hbase(HBASE_JVMS[target])
            signal = "SIGSTOP"
        elif kind is FaultKind.KILL_HBASE:
            self._cluster.kill_hbase(HBASE_JVMS[target])
            await asyncio.sleep(self._rng.uniform(*self._timing.dead_s))
            await self._cluster.start_hbase()
            signal = "SIGKILL"
        else:
            service = self._cluster.audit if kind is FaultKind.KILL_AUDIT else next(
                p for p in self._cluster.predictions if p.name == target
            )  # fmt: skip
            await service.kill()
            await asyncio.sleep(self._rng.uniform(*self._timing.dead_s))
            await service.start()
            signal = "SIGKILL"
        event = FaultEvent(kind, target, signal, at - self._epoch, time.monotonic() - at)
        self.events.append(event)
        log.info("restored %s after %.1f s", target, event.outage_s)
        return event

    async def _stop_hbase(self, component: Component) -> None:
        self._cluster.pause_hbase(component)
        try:
            await asyncio.sleep(self._rng.uniform(*self._timing.stopped_s))
        finally:
            # Also when the run is cancelled meanwhile: never leave a JVM stopped.
            self._cluster.resume_hbase(component)
        # Back means answering again, not merely running.
        await self._cluster.start_hbase()
