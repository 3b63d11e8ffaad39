"""`rowcast suite up | down | status`: HBase and the three services together."""

from __future__ import annotations

import json

import click

from rowcast.config import Settings
from rowcast_dev.hbase.runtime import HBaseError, StandaloneHBase
from rowcast_dev.suite import Suite, SuiteError


def bring_up(settings: Settings) -> None:
    """Start HBase (if needed) then the services; print where everything listens."""
    hb = StandaloneHBase(settings.hbase)
    if hb.ready():
        click.echo("HBase: already running")
    else:
        click.echo("HBase: starting (first run downloads jars from Maven Central)...")
        try:
            hb.start()
        except HBaseError as exc:
            raise click.ClickException(str(exc)) from exc
    try:
        statuses = Suite(settings).start()
    except SuiteError as exc:
        raise click.ClickException(str(exc)) from exc
    s = settings
    click.echo(
        f"HBase Thrift gateway: {s.hbase.host}:{s.hbase.thrift_port} "
        f"(Thrift2 admin: {s.hbase.thrift2_port})"
    )
    for st in statuses:
        state = "SERVING" if st.serving else "NOT SERVING"
        click.echo(
            f"{st.name:>10} service: {s.server.host}:{st.port}  pid {st.pid}  {state}  "
            f"metrics {st.metrics_url or 'off'}"
        )


@click.group()
def suite() -> None:
    """Run HBase and the three services in the background on this machine."""


@suite.command()
def up() -> None:
    """Start standalone HBase and the prediction, audit and model services (idempotent)."""
    bring_up(Settings.from_env())


@suite.command()
@click.option("--keep-hbase", is_flag=True, help="Stop only the services.")
def down(keep_hbase: bool) -> None:
    """Stop the services (gracefully) and standalone HBase."""
    settings = Settings.from_env()
    stopped = Suite(settings).stop()
    click.echo(f"stopped services: {', '.join(stopped) or 'none were running'}")
    if not keep_hbase:
        StandaloneHBase(settings.hbase).stop()
        click.echo("stopped HBase")


@suite.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Show which services run and answer health checks. Exit 0 when all serve, else 1."""
    settings = Settings.from_env()
    statuses = Suite(settings).status()
    hbase_ready = StandaloneHBase(settings.hbase).ready()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "hbase_ready": hbase_ready,
                    "services": [
                        {
                            "name": s.name,
                            "port": s.port,
                            "pid": s.pid,
                            "serving": s.serving,
                            "metrics_url": s.metrics_url,
                        }
                        for s in statuses
                    ],
                }
            )
        )
    else:
        click.echo(f"HBase ready: {hbase_ready}")
        for s in statuses:
            click.echo(
                f"{s.name:>10}: port {s.port} pid {s.pid} serving {s.serving} "
                f"metrics {s.metrics_url or 'off'}"
            )
    if not (hbase_ready and all(s.serving for s in statuses)):
        raise SystemExit(1)
