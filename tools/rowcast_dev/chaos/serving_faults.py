"""The faults of a serving chaos run, one at a time, against a multi-node HBase: kill -9 the
region server holding the most primaries of the version table, SIGSTOP one for a while, kill -9
a Thrift gateway (Thrift1 and Thrift2 in turns); each ends with what it broke serving again.

Every round has each kind once, in this order. A killed region server is restarted only after
the master has moved its primaries elsewhere (meta says so), so that the reassignment time is
the cluster's own (ZooKeeper session expiry, WAL split, assignment) and not cut short by the
process coming back on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from rowcast.errors import RowcastError
from rowcast.store.client import HBaseClient
from rowcast_dev.chaos.meta import TableLocations, locations

log = logging.getLogger(__name__)

#: How often meta is read while waiting for primaries to move.
META_POLL_S = 0.5
#: After SIGCONT, how long a region server whose ZooKeeper session expired meanwhile may take
#: to notice and abort (it is then restarted).
ABORT_GRACE_S = 5.0


class FaultableHBase(Protocol):
    """What the faults need of the cluster (rowcast_dev.hbase.cluster.ClusterHBase has it)."""

    def components(self) -> tuple[str, ...]: ...

    def pids(self) -> Mapping[str, int]: ...

    def kill(self, component: str, sig: int) -> None: ...

    def restart(self, component: str, timeout_s: float = ...) -> None: ...

    def regionserver_port(self, component: str) -> int: ...


class ServingFaultKind(enum.Enum):
    KILL_REGIONSERVER = "kill-regionserver"
    STOP_REGIONSERVER = "stop-regionserver"
    KILL_GATEWAY = "kill-gateway"


@dataclass(frozen=True)
class ServingTiming:
    """Seconds."""

    #: How long a region server stays stopped (SIGSTOP) before SIGCONT.
    stopped_s: float = 20.0
    #: How long a killed gateway stays dead before it is restarted.
    gateway_dead_s: float = 2.0
    #: Longest wait for the master to move a killed server's primaries.
    reassign_timeout_s: float = 180.0
    #: Longest wait for a restarted component to serve.
    restart_timeout_s: float = 180.0


@dataclass(frozen=True)
class FaultOutcome:
    """One fault as it happened (monotonic seconds)."""

    kind: ServingFaultKind
    round: int
    target: str
    signal: str
    at: float
    restored: float
    reassign_s: float | None
    primaries_on_target: int
    note: str = ""


def gateway_target(round_number: int, gateways: int) -> str:
    """Round 0 kills thrift2-1 (the Predict read path), round 1 thrift-1 (registry, audit),
    round 2 thrift2-2, ... so both kinds and every gateway take turns."""
    kind = "thrift2" if round_number % 2 == 0 else "thrift"
    return f"{kind}-{(round_number // 2) % gateways + 1}"


def schedule(rounds: int) -> Iterator[tuple[int, ServingFaultKind]]:
    """(round, kind) pairs: each kind once per round."""
    for round_number in range(rounds):
        for kind in ServingFaultKind:
            yield round_number, kind


def port_of(server: str) -> int | None:
    """The port of meta's "host:port" or ZooKeeper's "host,port,startcode" (None when
    unassigned)."""
    parts = server.split(",")
    port = parts[1] if len(parts) == 3 else server.rpartition(":")[2]
    return int(port) if port.isdigit() else None


class ServingFaultInjector:
    """Injects one fault at a time into the cluster, measures how its primaries move, and brings
    back what it broke."""

    def __init__(
        self,
        hbase: FaultableHBase,
        meta_client: HBaseClient,
        table: str,
        timing: ServingTiming,
        gateways: int,
    ) -> None:
        self._hbase = hbase
        self._meta = meta_client
        self._table = table
        self._timing = timing
        self._gateways = gateways
        self._stopped: set[str] = set()

    @property
    def regionservers(self) -> list[str]:
        return [c for c in self._hbase.components() if c.startswith("regionserver-")]

    def _component_by_port(self) -> dict[int, str]:
        return {self._hbase.regionserver_port(c): c for c in self.regionservers}

    async def layout(self) -> TableLocations:
        return await locations(self._meta, self._table)

    async def primaries_by_component(self) -> dict[str, int]:
        """Region server component -> primaries of the version table it serves now."""
        by_port = self._component_by_port()
        counts = {c: 0 for c in self.regionservers}
        for server, n in (await self.layout()).primaries_by_server().items():
            component = by_port.get(port_of(server) or -1)
            if component is not None:
                counts[component] += n
        return counts

    async def _busiest(self) -> tuple[str, int]:
        counts = await self.primaries_by_component()
        running = self._hbase.pids()
        candidates = {c: n for c, n in counts.items() if c in running} or counts
        component = max(sorted(candidates), key=lambda c: candidates[c])
        return component, candidates[component]

    async def wait_primaries_live(self, down: set[str], timeout_s: float) -> float | None:
        """Seconds until every primary is on a running region server not in `down`; None when
        timeout_s passed first. Meta reads that fail (meta itself moving) are retried."""

        def placed(table: TableLocations, live: set[int | None]) -> bool:
            ports = [port_of(r.server) for r in table.primaries]
            return bool(ports) and all(p in live for p in ports)

        return await self._wait_for_meta(placed, down, timeout_s)

    async def wait_replicas_live(self, timeout_s: float) -> float | None:
        """Seconds until every replica of every region (primaries and secondaries) is on a
        running region server, no two replicas of a region on the same one: the next fault
        must find a secondary to read from (measured: a SIGSTOP 10 s after a restart found
        the secondaries not yet placed again, and both copies of a region were away for
        ~25 s). None when timeout_s passed first."""

        def placed(table: TableLocations, live: set[int | None]) -> bool:
            by_region: dict[bytes, list[int | None]] = {}
            for replica in table.replicas:
                by_region.setdefault(replica.region, []).append(port_of(replica.server))
            return bool(by_region) and all(
                len(ports) == table.region_replication
                and all(p in live for p in ports)
                and len(set(ports)) == len(ports)
                for ports in by_region.values()
            )

        return await self._wait_for_meta(placed, set(), timeout_s)

    async def _wait_for_meta(
        self,
        placed: Callable[[TableLocations, set[int | None]], bool],
        down: set[str],
        timeout_s: float,
    ) -> float | None:
        """Seconds until `placed(meta's view of the table, ports of the running region servers
        not in down)` holds; None when timeout_s passed first. Failed meta reads are retried."""
        started = time.monotonic()
        while True:
            running = self._hbase.pids()
            live: set[int | None] = {
                self._hbase.regionserver_port(c)
                for c in self.regionservers
                if c in running and c not in down
            }
            try:
                if placed(await self.layout(), live):
                    return time.monotonic() - started
            except RowcastError as exc:
                log.debug("meta read failed: %s", exc)
            if time.monotonic() - started > timeout_s:
                return None
            await asyncio.sleep(META_POLL_S)

    async def inject(self, round_number: int, kind: ServingFaultKind) -> FaultOutcome:
        if kind is ServingFaultKind.KILL_REGIONSERVER:
            outcome = await self._kill_regionserver(round_number)
        elif kind is ServingFaultKind.STOP_REGIONSERVER:
            outcome = await self._stop_regionserver(round_number)
        else:
            outcome = await self._kill_gateway(round_number)
        await self.restore_dead()
        return outcome

    async def restore_dead(self) -> list[str]:
        """Restart every process of the cluster that is not running, as a supervisor would,
        and return their names. Measured: a region server SIGSTOPped past its ZooKeeper
        session can abort a minute after SIGCONT (its region-replica replication source finds
        its WAL split away), after the stop fault's own grace period."""
        running = self._hbase.pids()
        dead = [c for c in self._hbase.components() if c not in running]
        for component in dead:
            log.info("%s is not running: restarting it", component)
            await self._restart(component)
        return dead

    async def _restart(self, component: str) -> None:
        await asyncio.to_thread(self._hbase.restart, component, self._timing.restart_timeout_s)

    async def _kill_regionserver(self, round_number: int) -> FaultOutcome:
        target, primaries = await self._busiest()
        log.info("kill -9 %s (%d primaries)", target, primaries)
        at = time.monotonic()
        self._hbase.kill(target, signal.SIGKILL)
        reassign = await self.wait_primaries_live({target}, self._timing.reassign_timeout_s)
        await self._restart(target)
        note = "" if reassign is not None else "primaries not reassigned in time"
        if await self.wait_replicas_live(self._timing.reassign_timeout_s) is None:
            note = (note + "; " if note else "") + "replicas not all placed again in time"
        return FaultOutcome(
            kind=ServingFaultKind.KILL_REGIONSERVER,
            round=round_number,
            target=target,
            signal="SIGKILL",
            at=at,
            restored=time.monotonic(),
            reassign_s=reassign,
            primaries_on_target=primaries,
            note=note,
        )

    async def _stop_regionserver(self, round_number: int) -> FaultOutcome:
        target, primaries = await self._busiest()
        log.info("SIGSTOP %s for %.0f s (%d primaries)", target, self._timing.stopped_s, primaries)
        at = time.monotonic()
        self._stopped.add(target)
        self._hbase.kill(target, signal.SIGSTOP)
        try:
            reassign = await self.wait_primaries_live({target}, self._timing.stopped_s)
            left = self._timing.stopped_s - (time.monotonic() - at)
            if left > 0:
                await asyncio.sleep(left)
        finally:
            # Also when the run is cancelled meanwhile: never leave a JVM stopped.
            self.resume(target)
        # Its ZooKeeper session may have expired while it stood still: it then aborts on
        # waking (the master has declared it dead) and is restarted, as a supervisor would.
        note = ""
        for _ in range(int(ABORT_GRACE_S / 0.25)):
            if target not in self._hbase.pids():
                break
            await asyncio.sleep(0.25)
        if target not in self._hbase.pids():
            note = "aborted after SIGCONT (session expired); restarted"
            await self._restart(target)
        await self.wait_primaries_live(set(), self._timing.reassign_timeout_s)
        if await self.wait_replicas_live(self._timing.reassign_timeout_s) is None:
            note = (note + "; " if note else "") + "replicas not all placed again in time"
        return FaultOutcome(
            kind=ServingFaultKind.STOP_REGIONSERVER,
            round=round_number,
            target=target,
            signal="SIGSTOP",
            at=at,
            restored=time.monotonic(),
            reassign_s=reassign,
            primaries_on_target=primaries,
            note=note,
        )

    async def _kill_gateway(self, round_number: int) -> FaultOutcome:
        target = gateway_target(round_number, self._gateways)
        log.info("kill -9 %s", target)
        at = time.monotonic()
        self._hbase.kill(target, signal.SIGKILL)
        await asyncio.sleep(self._timing.gateway_dead_s)
        await self._restart(target)
        return FaultOutcome(
            kind=ServingFaultKind.KILL_GATEWAY,
            round=round_number,
            target=target,
            signal="SIGKILL",
            at=at,
            restored=time.monotonic(),
            reassign_s=None,
            primaries_on_target=0,
        )

    def resume(self, component: str) -> None:
        with contextlib.suppress(Exception):
            self._hbase.kill(component, signal.SIGCONT)
        self._stopped.discard(component)

    def resume_all(self) -> None:
        """SIGCONT whatever is still stopped (cleanup)."""
        for component in list(self._stopped):
            self.resume(component)
