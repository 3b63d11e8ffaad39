"""One chaos run, end to end: bring the cluster up, drive load while injecting faults, restore
everything, wait for the spools to drain, check the audit tables, tear down."""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rowcast.aio import within
from rowcast.config import Settings
from rowcast.errors import ModelNotFound
from rowcast.jobs.publish import PublishSpec, publish
from rowcast.store.admin import DDL_TIMEOUT_S, TableAdmin
from rowcast.store.client import HBaseClient
from rowcast.store.registry import Registry
from rowcast.store.schema import ensure_schema
from rowcast_dev.chaos.check import CheckResult, check
from rowcast_dev.chaos.cluster import Cluster, ClusterSpec
from rowcast_dev.chaos.faults import FaultInjector, FaultKind, FaultTiming
from rowcast_dev.chaos.load import LoadDriver
from rowcast_dev.chaos.report import ChaosReport
from rowcast_dev.chaos.spools import backlog

log = logging.getLogger(__name__)

#: Decisions served before the first fault, so every server has warmed up.
WARMUP_DECISIONS = 200
#: Margin around the run's decision times when reading the indexes (clock steps, rounding).
WINDOW_MARGIN_MS = 60_000


@dataclass(frozen=True)
class ChaosOptions:
    """What one run aims for and how it is set up."""

    decisions: int = 100_000
    kills: int = 20
    seed: int | None = None
    model: str = "credit_default"
    concurrency: int = 8
    prediction_servers: int = 2
    durability: str = "process"
    #: Decisions per second at most (None: as fast as the servers answer).
    max_rate: float | None = None
    #: Seconds of load and faults at most; the run then stops and reports itself incomplete.
    time_limit_s: float = 3600.0
    #: Seconds the spools get to drain after the last fault.
    drain_timeout_s: float = 600.0
    timing: FaultTiming = field(default_factory=FaultTiming)
    #: The HBase home to use: a standalone HBase already running there is used (and left
    #: running); None starts a fresh one in a temporary directory, removed after a pass.
    home: Path | None = None
    keep_home: bool = False


async def ensure_model(cluster: Cluster, model: str) -> int:
    """The model's active version; the demo model is published (trained, flattened,
    activated) when it has none."""
    return await ensure_active_version(cluster.settings, model)


async def ensure_active_version(settings: Settings, model: str) -> int:
    """The model's active version in the HBase of `settings`; the demo model is published
    (trained, flattened, activated) when it has none."""
    await asyncio.to_thread(ensure_schema, TableAdmin(settings.hbase), timeout_s=DDL_TIMEOUT_S)
    client = HBaseClient(settings.hbase)
    try:
        try:
            info = await Registry.over(client).models.get_model(model, timeout_s=30.0)
            if info.current_version:
                return info.current_version
        except ModelNotFound:
            pass
        result = await publish(settings, PublishSpec(model=model, activate=True))
        return result.version.version
    finally:
        client.close()


async def wait_drained(cluster: Cluster, timeout_s: float) -> float | None:
    """Seconds until no spool holds an unacknowledged byte; None if timeout_s passed first."""
    return await wait_spools_drained(cluster.spool_root, timeout_s)


async def wait_spools_drained(spool_root: Path, timeout_s: float) -> float | None:
    """Seconds until no spool under spool_root holds an unacknowledged byte; None if
    timeout_s passed first."""
    started = time.monotonic()
    while True:
        if (await asyncio.to_thread(backlog, spool_root)).pending_bytes == 0:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            return None
        await asyncio.sleep(0.2)


def _done(load: LoadDriver, faults: FaultInjector, options: ChaosOptions) -> bool:
    return (
        load.acknowledged >= options.decisions
        and faults.kills >= options.kills
        and faults.kinds_done() == set(FaultKind)
    )


async def run_chaos(
    options: ChaosOptions, progress: Callable[[str], None] = lambda _: None
) -> ChaosReport:
    """Run once and report; every process the run started is stopped when it returns (also on
    failure or cancellation)."""
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**31)
    rng = random.Random(seed)
    own_home = options.home is None
    home = options.home or Path(tempfile.mkdtemp(prefix="rowcast-chaos-"))
    run_id = f"chaos-{uuid.uuid4().hex[:8]}"
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    t_start = time.monotonic()
    cluster = Cluster(
        ClusterSpec(
            home,
            prediction_servers=options.prediction_servers,
            durability=options.durability,
        )
    )
    report: ChaosReport | None = None
    try:
        progress(f"HBase in {home} ...")
        await cluster.start_hbase(first=True)
        version = await ensure_model(cluster, options.model)
        progress(f"{options.model} v{version} active; starting the services (TLS + auth) ...")
        credentials = await asyncio.to_thread(cluster.prepare_security)
        await cluster.start_services()
        load = LoadDriver(
            options.model,
            [p.target for p in cluster.predictions],
            run_id,
            concurrency=options.concurrency,
            seed=rng.randrange(2**31),
            record_file=home / "chaos" / f"{run_id}-received.jsonl",
            max_rate=options.max_rate,
            credentials=credentials,
        )
        window_lo = int(time.time() * 1000) - WINDOW_MARGIN_MS
        t_load = time.monotonic()
        deadline = t_load + options.time_limit_s
        faults = FaultInjector(cluster, rng, options.timing, t_load)
        incomplete = ""
        load.start()
        try:
            await within(
                load.wait_for(min(WARMUP_DECISIONS, options.decisions)), options.time_limit_s
            )
            for kind, target in faults.schedule():
                if _done(load, faults, options):
                    break
                if time.monotonic() > deadline:
                    incomplete = f"time limit of {options.time_limit_s:.0f} s reached"
                    break
                await faults.pause()
                event = await faults.inject(kind, target)
                progress(
                    f"{event.at_s:7.1f} s  {event.signal} {event.target:<14} back after "
                    f"{event.outage_s:5.1f} s  acknowledged {load.acknowledged:,}"
                )
        finally:
            await load.stop()
        load_seconds = time.monotonic() - t_load
        progress(f"load stopped: {load.acknowledged:,} acknowledged; draining the spools ...")
        drain = await wait_drained(cluster, options.drain_timeout_s)
        if drain is None:
            incomplete = incomplete or f"spools not drained in {options.drain_timeout_s:.0f} s"
        progress("checking the audit tables ...")
        t_check = time.monotonic()
        window = (window_lo, int(time.time() * 1000) + WINDOW_MARGIN_MS)
        client = HBaseClient(cluster.settings.hbase)
        try:
            result: CheckResult = await check(client, options.model, run_id, load.received, window)
        finally:
            client.close()
        report = ChaosReport(
            started_at=started_at,
            seed=seed,
            target_decisions=options.decisions,
            target_kills=options.kills,
            durability=options.durability,
            prediction_servers=options.prediction_servers,
            concurrency=options.concurrency,
            check=result,
            faults=faults.events,
            drain_seconds=drain,
            attempted=load.stats.attempted,
            failed=dict(sorted(load.stats.failed.items())),
            load_seconds=load_seconds,
            check_seconds=time.monotonic() - t_check,
            quarantined_files=backlog(cluster.spool_root).quarantined_files,
            incomplete=incomplete,
            home=str(home),
        )
    finally:
        progress("stopping the services and HBase ...")
        try:
            await cluster.down()
        except BaseException:
            cluster.down_now()
            raise
    assert report is not None  # the try block either set it or raised
    report.total_seconds = time.monotonic() - t_start
    if own_home and report.passed and not report.incomplete and not options.keep_home:
        shutil.rmtree(home, ignore_errors=True)
        report.home = ""
    return report
