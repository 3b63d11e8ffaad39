"""One serving chaos run, end to end: bring the cluster and the services up, drive steady
Predict load with the cache off, measure a steady-state window, then inject the faults one at a
time (serving_faults.py) while the load goes on; stop the load, wait for the spools to drain,
check the audit tables (check.py), tear down, and report (serving_report.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rowcast.config import Settings
from rowcast.jobs.publish import PublishSpec, publish
from rowcast.store.client import HBaseClient
from rowcast.store.schema import prediction_table
from rowcast_dev.chaos.check import check
from rowcast_dev.chaos.load import LoadDriver
from rowcast_dev.chaos.meta import locations
from rowcast_dev.chaos.run import WINDOW_MARGIN_MS, ensure_active_version, wait_spools_drained
from rowcast_dev.chaos.serving_faults import (
    FaultOutcome,
    ServingFaultInjector,
    ServingTiming,
    schedule,
)
from rowcast_dev.chaos.serving_report import (
    FaultWindow,
    ServingReport,
    WindowStats,
    calls_between,
    timeline,
)
from rowcast_dev.chaos.serving_stack import ServingStack, StackSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingOptions:
    """What one serving run does and how it is set up."""

    regionservers: int = 3
    gateways: int = 2
    region_replication: int = 2
    prediction_servers: int = 2
    #: Rounds of faults; each round has every fault kind once.
    rounds: int = 2
    #: Predict calls per second, on a fixed schedule (0: closed loop, as fast as answered).
    rate: float = 25.0
    #: Calls in flight at most.
    concurrency: int = 8
    #: Deadline of each Predict call.
    deadline_s: float = 1.0
    #: The services' per-gateway attempt timeout of point reads (None: the settings' default).
    attempt_timeout_s: float | None = None
    #: Load before the steady-state window (connections made, pools warm); not measured.
    warmup_s: float = 5.0
    #: The steady-state window the fault windows are compared with.
    steady_s: float = 30.0
    #: Seconds after a fault is restored that still count to its window (and before the next).
    settle_s: float = 10.0
    timing: ServingTiming = field(default_factory=ServingTiming)
    #: Seconds of load and faults at most; the run then stops and reports itself incomplete.
    duration_s: float = 3600.0
    drain_timeout_s: float = 300.0
    model: str = "credit_default"
    durability: str = "process"
    seed: int | None = None
    #: A home with a cluster running in it is used (and left running); None: a fresh temporary
    #: home, removed after a passing run.
    home: Path | None = None
    keep_home: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["home"] = str(self.home) if self.home is not None else None
        return data


async def ensure_replicated_version(settings: Settings, model: str) -> tuple[int, str]:
    """The model's active version and its table, published anew (and activated) when the
    active one has fewer region replicas than the settings ask for."""
    version = await ensure_active_version(settings, model)
    wanted = settings.hbase.region_replication
    client = HBaseClient(settings.hbase)
    try:
        have = (await locations(client, prediction_table(model, version))).region_replication
        if have < wanted:
            log.info("v%d has %d replica(s), %d wanted: publishing anew", version, have, wanted)
            result = await publish(settings, PublishSpec(model=model, activate=True))
            version = result.version.version
    finally:
        client.close()
    return version, prediction_table(model, version)


def _window(outcome: FaultOutcome, end: float, epoch: float, stats: WindowStats) -> FaultWindow:
    return FaultWindow(
        kind=outcome.kind.value,
        round=outcome.round,
        target=outcome.target,
        signal=outcome.signal,
        at_s=outcome.at - epoch,
        outage_s=outcome.restored - outcome.at,
        reassign_s=outcome.reassign_s,
        primaries_on_target=outcome.primaries_on_target,
        stats=stats,
        note=outcome.note,
    )


async def run_serving(
    options: ServingOptions, progress: Callable[[str], None] = lambda _: None
) -> ServingReport:
    """Run once and report; every process the run started is stopped when it returns (also on
    failure or cancellation)."""
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**31)
    own_home = options.home is None
    home = options.home or Path(tempfile.mkdtemp(prefix="rowcast-chaos-serving-"))
    run_id = f"serving-{uuid.uuid4().hex[:8]}"
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    t_start = time.monotonic()
    stack = ServingStack(
        StackSpec(
            home,
            regionservers=options.regionservers,
            gateways=options.gateways,
            region_replication=options.region_replication,
            prediction_servers=options.prediction_servers,
            durability=options.durability,
            attempt_timeout_s=options.attempt_timeout_s,
        )
    )
    injector: ServingFaultInjector | None = None
    report: ServingReport | None = None
    try:
        shape = stack.hbase.options
        progress(
            f"cluster in {home}: {shape.regionservers} region servers, {shape.gateways}+"
            f"{shape.gateways} gateways, replication {shape.region_replication} ..."
        )
        await stack.start_hbase()
        settings = stack.settings
        version, table = await ensure_replicated_version(settings, options.model)
        progress(f"{options.model} v{version} active ({table}); starting the services ...")
        credentials = await asyncio.to_thread(stack.prepare_security)
        await stack.start_services()
        meta_client = HBaseClient(settings.hbase)
        injector = ServingFaultInjector(
            stack.hbase, meta_client, table, options.timing, shape.gateways
        )
        layout: dict[str, Any] = {
            "version": version,
            "table": table,
            "region_replication": (await injector.layout()).region_replication,
            "primaries_by_regionserver": await injector.primaries_by_component(),
        }
        load = LoadDriver(
            options.model,
            [p.target for p in stack.predictions],
            run_id,
            concurrency=options.concurrency,
            seed=seed,
            record_file=home / "chaos" / f"{run_id}-received.jsonl",
            max_rate=options.rate or None,
            credentials=credentials,
            timeout_s=options.deadline_s,
            record_calls=True,
            open_loop=bool(options.rate),
        )
        window_lo = int(time.time() * 1000) - WINDOW_MARGIN_MS
        epoch = time.monotonic()
        deadline = epoch + options.duration_s
        windows: list[FaultWindow] = []
        incomplete = ""
        load.start()
        try:
            await asyncio.sleep(options.warmup_s)
            steady_start = time.monotonic()
            await asyncio.sleep(options.steady_s)
            steady_end = time.monotonic()
            steady = WindowStats.of(
                calls_between(load.calls, steady_start, steady_end), steady_end - steady_start
            )
            progress(
                f"steady state: {steady.calls} calls, p50 {steady.p50_ms:.1f} ms, p99 "
                f"{steady.p99_ms:.1f} ms, {steady.failed_calls} failed"
            )
            for round_number, kind in schedule(options.rounds):
                if time.monotonic() > deadline:
                    incomplete = f"time limit of {options.duration_s:.0f} s reached"
                    break
                outcome = await injector.inject(round_number, kind)
                await asyncio.sleep(options.settle_s)
                end = time.monotonic()
                stats = WindowStats.of(calls_between(load.calls, outcome.at, end), end - outcome.at)
                window = _window(outcome, end, epoch, stats)
                windows.append(window)
                reassign = (
                    f", primaries reassigned in {window.reassign_s:.1f} s"
                    if window.reassign_s is not None
                    else ""
                )
                progress(
                    f"{window.at_s:7.1f} s  round {round_number} {kind.value} {outcome.target}: "
                    f"back after {window.outage_s:.1f} s{reassign}; {stats.calls} calls, "
                    f"{stats.failed_calls} failed, p99 {stats.p99_ms:.1f} ms"
                )
        finally:
            await load.stop()
            meta_client.close()
        load_end = time.monotonic()
        progress(f"load stopped: {len(load.calls):,} calls; draining the spools ...")
        drain = await wait_spools_drained(stack.spool_root, options.drain_timeout_s)
        if drain is None:
            incomplete = incomplete or f"spools not drained in {options.drain_timeout_s:.0f} s"
        restarted = await injector.restore_dead()
        if restarted:
            progress(f"restarted what died after its fault: {', '.join(restarted)}")
        progress("checking the audit tables ...")
        decision_times = (window_lo, int(time.time() * 1000) + WINDOW_MARGIN_MS)
        client = HBaseClient(settings.hbase)
        try:
            result = await check(client, options.model, run_id, load.received, decision_times)
        finally:
            client.close()
        report = ServingReport(
            started_at=started_at,
            settings={**options.to_json(), "seed": seed, "security": "tls+token", "cache": "off"},
            total=WindowStats.of(load.calls, load_end - epoch),
            steady=steady,
            faults=windows,
            check=result,
            drain_seconds=drain,
            layout=layout,
            load_seconds=load_end - epoch,
            per_second=timeline(load.calls, epoch),
            incomplete=incomplete,
            home=str(home),
        )
    finally:
        if injector is not None:
            injector.resume_all()
        progress("stopping the services and the cluster ...")
        try:
            await stack.down()
        except BaseException:
            stack.down_now()
            raise
    assert report is not None  # the try block either set it or raised
    report.total_seconds = time.monotonic() - t_start
    if own_home and report.passed and not report.incomplete and not options.keep_home:
        shutil.rmtree(home, ignore_errors=True)
        report.home = ""
    return report
