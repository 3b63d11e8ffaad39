"""`rowcast chaos audit`: kill -9 and SIGSTOP the serving stack under load, then prove that
every decision a client received is on record exactly once (docs/audit.md, "Proof of no loss").

Exit codes: 0 passed, 1 a decision was lost, duplicated or recorded wrong, 2 the run stopped
short of its targets (time limit, spools not drained) without such a failure, 130 interrupted
(Ctrl-C or SIGTERM; everything the run started is stopped first).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click

from rowcast_dev.chaos.faults import FaultTiming
from rowcast_dev.chaos.report import ChaosReport
from rowcast_dev.chaos.run import ChaosOptions, run_chaos

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
