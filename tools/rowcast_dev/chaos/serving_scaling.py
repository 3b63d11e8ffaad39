"""`rowcast chaos serving --measure-scaling`: uncached Predict throughput and latency of the
same stack with 3, 2 and 1 region servers.

One cluster is started with all its region servers; after each measurement one region server
is stopped gracefully (SIGTERM: it closes its regions, the master opens them elsewhere) and the
next measurement starts once meta shows every primary on a running server. The load is closed
loop at a fixed concurrency (as fast as answered), so calls/s is the stack's capacity here.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rowcast.store.client import HBaseClient
from rowcast_dev.chaos.load import LoadDriver
from rowcast_dev.chaos.serving import ensure_replicated_version
from rowcast_dev.chaos.serving_faults import ServingFaultInjector, ServingTiming
from rowcast_dev.chaos.serving_report import WindowStats, calls_between
from rowcast_dev.chaos.serving_stack import ServingStack, StackSpec


@dataclass(frozen=True)
class ScalingOptions:
    regionservers: int = 3
    gateways: int = 2
    region_replication: int = 2
    prediction_servers: int = 2
    concurrency: int = 8
    deadline_s: float = 1.0
    #: Seconds of measured load per region-server count (after warmup_s unmeasured).
    measure_s: float = 30.0
    warmup_s: float = 5.0
    model: str = "credit_default"
    seed: int | None = None
    home: Path | None = None
    keep_home: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["home"] = str(self.home) if self.home is not None else None
        return data


@dataclass(frozen=True)
class ScalingPoint:
    """One measurement: how many region servers ran, where the primaries were, the load."""

    regionservers: int
    primaries_by_regionserver: dict[str, int]
    stats: WindowStats

    def to_json(self) -> dict[str, Any]:
        return {
            "regionservers": self.regionservers,
            "primaries_by_regionserver": self.primaries_by_regionserver,
            **self.stats.to_json(),
        }


@dataclass
class ScalingReport:
    started_at: str
    settings: dict[str, Any]
    points: list[ScalingPoint] = field(default_factory=list)
    total_seconds: float = 0.0
    home: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "points": [p.to_json() for p in self.points],
            "settings": self.settings,
            "seconds": round(self.total_seconds, 1),
            "started_at": self.started_at,
            "home": self.home,
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def summary(self) -> str:
        lines = ["region servers  calls/s   p50 ms   p99 ms   failed"]
        for p in self.points:
            s = p.stats
            lines.append(
                f"{p.regionservers:>14}  {s.calls_per_s:7.1f}  {s.p50_ms:7.1f}  {s.p99_ms:7.1f}"
                f"  {s.failed_calls:7d}"
            )
        return "\n".join(lines)


async def measure_scaling_run(
    options: ScalingOptions, progress: Callable[[str], None] = lambda _: None
) -> ScalingReport:
    """Measure at every region-server count from options.regionservers down to 1; everything
    the run started is stopped when it returns."""
    own_home = options.home is None
    home = options.home or Path(tempfile.mkdtemp(prefix="rowcast-chaos-scaling-"))
    report = ScalingReport(
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        settings={**options.to_json(), "cache": "off", "security": "tls+token"},
        home=str(home),
    )
    t_start = time.monotonic()
    stack = ServingStack(
        StackSpec(
            home,
            regionservers=options.regionservers,
            gateways=options.gateways,
            region_replication=options.region_replication,
            prediction_servers=options.prediction_servers,
        )
    )
    stopped: list[str] = []
    try:
        progress(f"cluster in {home} ...")
        await stack.start_hbase()
        settings = stack.settings
        version, table = await ensure_replicated_version(settings, options.model)
        progress(f"{options.model} v{version} active; starting the services ...")
        credentials = await asyncio.to_thread(stack.prepare_security)
        await stack.start_services()
        meta = HBaseClient(settings.hbase)
        shape = stack.hbase.options
        faults = ServingFaultInjector(stack.hbase, meta, table, ServingTiming(), shape.gateways)
        try:
            for running in range(shape.regionservers, 0, -1):
                layout = await faults.primaries_by_component()
                load = LoadDriver(
                    options.model,
                    [p.target for p in stack.predictions],
                    f"scaling-{uuid.uuid4().hex[:8]}",
                    concurrency=options.concurrency,
                    seed=(options.seed or 0) + running,
                    record_file=home / "chaos" / f"scaling-{running}-received.jsonl",
                    credentials=credentials,
                    timeout_s=options.deadline_s,
                    record_calls=True,
                )
                load.start()
                try:
                    await asyncio.sleep(options.warmup_s)
                    start = time.monotonic()
                    await asyncio.sleep(options.measure_s)
                    end = time.monotonic()
                finally:
                    await load.stop()
                stats = WindowStats.of(calls_between(load.calls, start, end), end - start)
                report.points.append(ScalingPoint(running, layout, stats))
                progress(
                    f"{running} region server(s): {stats.calls_per_s:.1f} calls/s, p50 "
                    f"{stats.p50_ms:.1f} ms, p99 {stats.p99_ms:.1f} ms, {stats.failed_calls} "
                    "failed"
                )
                if running > 1:
                    victim = f"regionserver-{running}"
                    progress(f"stopping {victim} (SIGTERM) and waiting for its regions ...")
                    stack.hbase.kill(victim, signal.SIGTERM)
                    stopped.append(victim)
                    await faults.wait_primaries_live(set(stopped), 300.0)
        finally:
            meta.close()
            if not stack.started_hbase:
                # A cluster the run did not start is left as it found it.
                for victim in stopped:
                    await asyncio.to_thread(stack.hbase.restart, victim, 300.0)
    finally:
        progress("stopping the services and the cluster ...")
        try:
            await stack.down()
        except BaseException:
            stack.down_now()
            raise
    report.total_seconds = time.monotonic() - t_start
    if own_home and not options.keep_home:
        shutil.rmtree(home, ignore_errors=True)
        report.home = ""
    return report
