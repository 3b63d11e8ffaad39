"""`rowcast chaos audit`: kill -9 and SIGSTOP the serving stack under load, then prove that
every decision a client received is on record exactly once (docs/audit.md, "Proof of no loss").
`rowcast chaos serving`: kill -9 and SIGSTOP region servers and gateways of a multi-node HBase
under uncached Predict load and measure that serving goes on (docs/scaling.md).

Exit codes: 0 passed, 1 a decision was lost, duplicated or recorded wrong (serving: a goal
failed), 2 the run stopped short of its targets (time limit, spools not drained) without such
a failure, 130 interrupted (Ctrl-C or SIGTERM; everything the run started is stopped first).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from rowcast_dev.chaos.faults import FaultTiming
from rowcast_dev.chaos.report import ChaosReport
from rowcast_dev.chaos.run import ChaosOptions, run_chaos
from rowcast_dev.chaos.serving import ServingOptions, run_serving
from rowcast_dev.chaos.serving_faults import ServingTiming
from rowcast_dev.chaos.serving_report import ServingReport
from rowcast_dev.chaos.serving_scaling import ScalingOptions, ScalingReport, measure_scaling_run

T = TypeVar("T")

_DEFAULTS = ChaosOptions()


@click.group()
def chaos() -> None:
    """Fault-injection runs against a local stack of its own."""


@chaos.command("audit")
@click.option(
    "--decisions",
    type=click.IntRange(min=1),
    default=_DEFAULTS.decisions,
    show_default=True,
    help="Acknowledged decisions (answers clients received) to reach at least.",
)
@click.option(
    "--kills",
    type=click.IntRange(min=0),
    default=_DEFAULTS.kills,
    show_default=True,
    help="kill -9s to inject at least (every fault kind also runs at least once).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the JSON result here (always written; default: chaos-audit-<UTC start time>"
    ".json, e.g. chaos-audit-20261125-165115.json, in the current directory).",
)
@click.option("--seed", type=int, help="Seed of the fault schedule and inputs (default: random).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON result, not a summary.")
@click.option(
    "--time-limit",
    type=click.FloatRange(min=1),
    default=_DEFAULTS.time_limit_s,
    show_default=True,
    help="Seconds of load and faults at most; the run then stops, checks what it has and "
    "exits 2 if the targets were not reached.",
)
@click.option(
    "--drain-timeout",
    type=click.FloatRange(min=1),
    default=_DEFAULTS.drain_timeout_s,
    show_default=True,
    help="Seconds the spools get to drain after the last fault.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=_DEFAULTS.concurrency,
    show_default=True,
    help="Concurrent Predict clients.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="Decisions per second at most (0: as fast as the servers answer).",
)
@click.option(
    "--prediction-servers",
    type=click.IntRange(min=1, max=8),
    default=_DEFAULTS.prediction_servers,
    show_default=True,
    help="Prediction server processes (one is killed at a time; the others keep serving).",
)
@click.option(
    "--durability",
    type=click.Choice(["process", "fsync"]),
    default=_DEFAULTS.durability,
    show_default=True,
    help="Audit spool durability of the prediction servers.",
)
@click.option(
    "--pause",
    type=(float, float),
    default=_DEFAULTS.timing.pause_s,
    show_default=True,
    help="Seconds between faults, drawn from this range.",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="HBase home to run in (a standalone HBase running there is used and left running); "
    "default: a fresh temporary one, removed after a passing run.",
)
@click.option("--keep-home", is_flag=True, help="Keep the temporary home (logs, spools, data).")
@click.option("-v", "--verbose", is_flag=True, help="Log each fault and restart.")
def audit(
    decisions: int,
    kills: int,
    out: Path | None,
    seed: int | None,
    as_json: bool,
    time_limit: float,
    drain_timeout: float,
    concurrency: int,
    rate: float,
    prediction_servers: int,
    durability: str,
    pause: tuple[float, float],
    home: Path | None,
    keep_home: bool,
    verbose: bool,
) -> None:
    """Prove that no acknowledged decision is lost or duplicated under crashes.

    Starts its own standalone HBase, an AuditService and prediction servers (each its own
    process, on free loopback ports), publishes the demo model if needed, and drives Predict
    load while it kill -9s the AuditService, a prediction server and an HBase JVM (master or
    Thrift gateway), and SIGSTOPs HBase, in rounds, restarting what it killed. Then it waits
    for the spools to drain and checks that every decision id a client received is in the
    audit table exactly once with all its fields.

    Prints a summary and the JSON of acknowledged, found, lost, duplicated, kills and
    drain_seconds (with --json: the whole JSON result instead), and writes the whole JSON
    result to --out (by default chaos-audit-<UTC start time>.json in the current directory).
    """
    if out is None:
        out = default_out_path(datetime.now(UTC))
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    options = ChaosOptions(
        decisions=decisions,
        kills=kills,
        seed=seed,
        concurrency=concurrency,
        prediction_servers=prediction_servers,
        durability=durability,
        max_rate=rate or None,
        time_limit_s=time_limit,
        drain_timeout_s=drain_timeout,
        timing=FaultTiming(
            pause_s=pause, dead_s=_DEFAULTS.timing.dead_s, stopped_s=_DEFAULTS.timing.stopped_s
        ),
        home=home.resolve() if home is not None else None,
        keep_home=keep_home,
    )

    def say(line: str) -> None:
        if not as_json:
            click.echo(line, err=True)

    try:
        report = asyncio.run(_run(options, say))
    except (KeyboardInterrupt, asyncio.CancelledError):
        click.echo("chaos run interrupted; what it started is stopped", err=True)
        raise SystemExit(130) from None
    try:
        report.write(out)
        written = f"result written to {out.resolve()}"
    except OSError as exc:
        # The run may have taken an hour: keep its verdict and print the whole result instead.
        written = f"could not write the result to {out}: {exc}"
        if not as_json:
            click.echo(json.dumps(report.to_json(), indent=2), err=True)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        click.echo(written, err=True)
    else:
        click.echo(report.summary())
        click.echo(json.dumps(report.headline()))
        click.echo(written)
        if report.home:
            click.echo(f"home kept for inspection: {report.home}")
    if not report.passed:
        raise SystemExit(1)
    if report.incomplete:
        raise SystemExit(2)


def default_out_path(now: datetime) -> Path:
    """Where the JSON result goes without --out: chaos-audit-<UTC time>.json, here."""
    return Path(f"chaos-audit-{now.astimezone(UTC):%Y%m%d-%H%M%S}.json")


async def _run(options: ChaosOptions, say: Callable[[str], None]) -> ChaosReport:
    """Run with SIGTERM handled like Ctrl-C: the run is cancelled and stops what it started."""
    task = asyncio.ensure_future(run_chaos(options, say))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


_SERVING = ServingOptions()
_TIMING = ServingTiming()


@chaos.command("serving")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Home of the cluster: one running there (`rowcast hbase start --regionservers N`) is "
    "used and left running; default: a fresh temporary one, removed after a passing run.",
)
@click.option(
    "--regionservers",
    type=click.IntRange(min=2),
    default=_SERVING.regionservers,
    show_default=True,
    help="Region servers of the cluster it starts.",
)
@click.option(
    "--gateways",
    type=click.IntRange(min=2),
    default=_SERVING.gateways,
    show_default=True,
    help="Thrift1 gateways, and as many Thrift2 gateways, of the cluster it starts.",
)
@click.option(
    "--region-replication",
    type=click.IntRange(min=1),
    default=_SERVING.region_replication,
    show_default=True,
    help="Region replicas of the version table (a new version is published when the active "
    "one has fewer).",
)
@click.option(
    "--rounds",
    type=click.IntRange(min=0),
    default=_SERVING.rounds,
    show_default=True,
    help="Rounds of faults; each round kills the region server holding the most primaries, "
    "SIGSTOPs one, and kills a gateway (Thrift2 and Thrift1 in turns), one at a time.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=_SERVING.rate,
    show_default=True,
    help="Predict calls per second on a fixed schedule, latency counted from each call's "
    "intended start (0: closed loop, as fast as answered).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=_SERVING.concurrency,
    show_default=True,
    help="Predict calls in flight at most.",
)
@click.option(
    "--deadline",
    type=click.FloatRange(min=0.01),
    default=_SERVING.deadline_s,
    show_default=True,
    help="Seconds each Predict call may take (its gRPC deadline).",
)
@click.option(
    "--attempt-timeout",
    type=click.FloatRange(min=0.01),
    help="Seconds one point read may take on one gateway before the services try the next "
    "(ROWCAST_HBASE_ATTEMPT_TIMEOUT_S of the services; default: the settings' default).",
)
@click.option(
    "--steady",
    type=click.FloatRange(min=1),
    default=_SERVING.steady_s,
    show_default=True,
    help="Seconds of the steady-state window before the first fault.",
)
@click.option(
    "--settle",
    type=click.FloatRange(min=0),
    default=_SERVING.settle_s,
    show_default=True,
    help="Seconds after a fault is restored that still count to its window.",
)
@click.option(
    "--stop-seconds",
    type=click.FloatRange(min=0.1),
    default=_TIMING.stopped_s,
    show_default=True,
    help="Seconds a region server stays SIGSTOPped.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=_SERVING.duration_s,
    show_default=True,
    help="Seconds of load and faults at most; the run then stops, reports what it has and "
    "exits 2 if not every round ran.",
)
@click.option(
    "--drain-timeout",
    type=click.FloatRange(min=1),
    default=_SERVING.drain_timeout_s,
    show_default=True,
    help="Seconds the spools get to drain after the last fault.",
)
@click.option(
    "--measure-scaling",
    is_flag=True,
    help="Instead of faults: measure uncached Predict throughput (closed loop at "
    "--concurrency) and p50/p99 with 3, 2 and 1 region servers (stopping one at a time).",
)
@click.option(
    "--measure-seconds",
    type=click.FloatRange(min=1),
    default=ScalingOptions().measure_s,
    show_default=True,
    help="With --measure-scaling: seconds of load per region-server count.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the JSON result here (always written; default: bench/results/"
    "chaos-serving-<UTC start time>.json when bench/results exists here, else in the current "
    "directory).",
)
@click.option("--seed", type=int, help="Seed of the load's inputs (default: random).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON result, not a summary.")
@click.option("--keep-home", is_flag=True, help="Keep the temporary home (logs, spools, data).")
@click.option("-v", "--verbose", is_flag=True, help="Log each fault, restart and meta read.")
def serving(
    home: Path | None,
    regionservers: int,
    gateways: int,
    region_replication: int,
    rounds: int,
    rate: float,
    concurrency: int,
    deadline: float,
    attempt_timeout: float | None,
    steady: float,
    settle: float,
    stop_seconds: float,
    duration: float,
    drain_timeout: float,
    measure_scaling: bool,
    measure_seconds: float,
    out: Path | None,
    seed: int | None,
    as_json: bool,
    keep_home: bool,
    verbose: bool,
) -> None:
    """Prove that Predict keeps answering while region servers and gateways fail.

    Starts a multi-node HBase (ZooKeeper, HDFS, a master, --regionservers region servers,
    --gateways Thrift1 and Thrift2 gateways, each its own JVM) unless one runs in --home, an
    AuditService, a ModelService and two prediction servers pointed at every gateway (TLS and
    tokens on, the prediction cache off: every call reads HBase), and makes sure the active
    demo version has --region-replication replicas. It then drives Predict load (an audit
    decision each), measures a steady-state window, and injects, one at a time and --rounds
    times each: kill -9 of the region server holding the most primaries of the version table
    (restarted once the master has reassigned them, the seconds measured from hbase:meta),
    SIGSTOP of one for --stop-seconds, kill -9 of a Thrift2 or Thrift1 gateway (in turns),
    restarting what it killed. At the end the spools drain and every decision a client
    received is checked in the audit tables.

    Prints a summary and writes the JSON result (calls, failed by status, p50/p99/max in steady
    state and per fault, reassignment seconds, audit lost/duplicated, the goals with PASS or
    FAIL). Goals: 0 failed Predicts; p99 during a region-server kill <= 3x steady p99; audit 0
    lost, 0 duplicated. Exits 1 when a goal fails, 2 when the run stopped short.
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # kazoo logs every ZooKeeper connection the cluster's readiness checks make.
    logging.getLogger("kazoo").setLevel(logging.WARNING)
    if out is None:
        out = default_serving_out_path(datetime.now(UTC), Path.cwd(), measure_scaling)
    say: Callable[[str], None] = (lambda _: None) if as_json else _echo_err
    resolved_home = home.resolve() if home is not None else None
    result: ServingReport | ScalingReport
    try:
        if measure_scaling:
            scaling = ScalingOptions(
                regionservers=regionservers,
                gateways=gateways,
                region_replication=region_replication,
                concurrency=concurrency,
                deadline_s=deadline,
                measure_s=measure_seconds,
                home=resolved_home,
                keep_home=keep_home,
                seed=seed,
            )
            result = asyncio.run(_cancellable(measure_scaling_run(scaling, say)))
        else:
            options = ServingOptions(
                regionservers=regionservers,
                gateways=gateways,
                region_replication=region_replication,
                rounds=rounds,
                rate=rate,
                concurrency=concurrency,
                deadline_s=deadline,
                attempt_timeout_s=attempt_timeout,
                steady_s=steady,
                settle_s=settle,
                timing=replace(_TIMING, stopped_s=stop_seconds),
                duration_s=duration,
                drain_timeout_s=drain_timeout,
                seed=seed,
                home=resolved_home,
                keep_home=keep_home,
            )
            result = asyncio.run(_cancellable(run_serving(options, say)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        click.echo("chaos run interrupted; what it started is stopped", err=True)
        raise SystemExit(130) from None
    try:
        result.write(out)
        written = f"result written to {out.resolve()}"
    except OSError as exc:
        written = f"could not write the result to {out}: {exc}"
        if not as_json:
            click.echo(json.dumps(result.to_json(), indent=2), err=True)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        click.echo(written, err=True)
    else:
        click.echo(result.summary())
        click.echo(written)
        if result.home:
            click.echo(f"home kept for inspection: {result.home}")
    if isinstance(result, ServingReport):
        if not result.passed:
            raise SystemExit(1)
        if result.incomplete:
            raise SystemExit(2)


def _echo_err(line: str) -> None:
    click.echo(line, err=True)


def default_serving_out_path(now: datetime, cwd: Path, scaling: bool = False) -> Path:
    """Where the serving result goes without --out: bench/results/ when the current directory
    has one (the repository's root), else the current directory."""
    name = "chaos-scaling" if scaling else "chaos-serving"
    results = cwd / "bench" / "results"
    folder = results if results.is_dir() else cwd
    return folder / f"{name}-{now.astimezone(UTC):%Y%m%d-%H%M%S}.json"


async def _cancellable(coro: Coroutine[Any, Any, T]) -> T:
    """Run with SIGTERM handled like Ctrl-C: the run is cancelled and stops what it started."""
    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
