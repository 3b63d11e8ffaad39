"""`rowcast hbase …`: fetch, start, stop and inspect the embedded standalone HBase."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from rowcast.config import HBaseSettings, Settings
from rowcast_dev.hbase.runtime import HBaseError, HBaseStartError, HBaseStatus, StandaloneHBase

F = TypeVar("F", bound=Callable[..., Any])

#: `status` exit codes, for scripts: 0 ready, 1 running but not ready, 3 not running.
EXIT_READY, EXIT_NOT_READY, EXIT_NOT_RUNNING = 0, 1, 3


def _port_option(flag: str, what: str, env: str, default: int) -> Callable[[F], F]:
    # Default None, not the number: an unset option must fall back to the environment.
    return click.option(
        flag, type=int, help=f"{what} port [default: $ROWCAST_HBASE_{env} or {default}]."
    )


def _hbase_options(func: F) -> F:
    """--home and the five port options, shared by every command (defaults: ROWCAST_* env)."""
    options = [
        click.option(
            "--home",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Directory for classpath, conf, data, logs and pid files "
            "[default: $ROWCAST_HOME or ./.rowcast].",
        ),
        _port_option("--thrift-port", "Thrift1 gateway (happybase)", "THRIFT_PORT", 19090),
        _port_option("--thrift2-port", "Thrift2 gateway (table admin)", "THRIFT2_PORT", 19091),
        _port_option("--zk-port", "ZooKeeper client", "ZK_PORT", 21818),
        _port_option("--master-port", "HMaster RPC", "MASTER_PORT", 16000),
        _port_option("--regionserver-port", "RegionServer RPC", "RS_PORT", 16020),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _runtime(
    home: Path | None,
    thrift_port: int | None,
    thrift2_port: int | None,
    zk_port: int | None,
    master_port: int | None,
    regionserver_port: int | None,
) -> StandaloneHBase:
    base = Settings.from_env().hbase
    overrides: dict[str, Any] = {
        "home": home,
        "thrift_port": thrift_port,
        "thrift2_port": thrift2_port,
        "zookeeper_port": zk_port,
        "master_port": master_port,
        "regionserver_port": regionserver_port,
    }
    settings: HBaseSettings = replace(
        base, **{key: value for key, value in overrides.items() if value is not None}
    )
    return StandaloneHBase(settings)


def _ports_line(status: HBaseStatus) -> str:
    return " ".join(f"{role}={port}" for role, port in status.ports.items())


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group(name="hbase")
def hbase() -> None:
    """Run the embedded standalone HBase (master + regionserver + ZooKeeper in one JVM, plus
    the Thrift1 and Thrift2 gateways) that rowcast stores its tables in.

    Everything lives under --home. Ports default to the ROWCAST_HBASE_*_PORT variables.
    """


@hbase.command()
@_hbase_options
def fetch(**opts: Any) -> None:
    """Resolve the HBase jars with Maven (once) and cache the classpath under --home.

    Resolves again only if the bundled pom.xml changed or a cached jar disappeared.
    """
    runtime = _runtime(**opts)
    try:
        path = runtime.fetch()
    except HBaseError as exc:
        _fail(str(exc))
    entries = path.read_text().strip().split(":")
    click.echo(f"classpath: {path} ({len(entries)} entries)")


@hbase.command()
@_hbase_options
@click.option(
    "--timeout",
    type=float,
    default=180.0,
    show_default=True,
    help="Seconds to wait for the readiness round trip before giving up (and stopping).",
)
def start(timeout: float, **opts: Any) -> None:
    """Start HBase in the background and wait until a put/get round trip succeeds.

    The JVMs outlive this command; stop them with `rowcast hbase stop`. Starting an instance
    that is already running does nothing (exit 0). On failure whatever was started is stopped
    again and the log lines that explain it are printed (exit 1).
    """
    runtime = _runtime(**opts)
    began = time.monotonic()
    try:
        started = runtime.start(timeout_s=timeout)
    except HBaseStartError as exc:
        click.echo(f"error: {exc.message}", err=True)
        if exc.log_excerpt:
            click.echo(exc.log_excerpt, err=True)
            click.echo(f"logs: {runtime.paths.logs}", err=True)
        sys.exit(1)
    except HBaseError as exc:
        _fail(str(exc))
    status = runtime.status()
    pids = " ".join(f"{c.name}={c.pid}" for c in status.components)
    if started:
        click.echo(f"HBase ready in {time.monotonic() - began:.1f} s (home {runtime.paths.home})")
    else:
        click.echo(f"HBase is already running (home {runtime.paths.home})")
    click.echo(f"ports: {_ports_line(status)}")
    click.echo(f"pids: {pids}")


@hbase.command()
@_hbase_options
@click.option(
    "--grace",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds the master gets after SIGTERM before SIGKILL (gateways: at most 20).",
)
def stop(grace: float, **opts: Any) -> None:
    """Stop the gateways, then the master (SIGTERM, then SIGKILL after --grace).

    Stopping an instance that is not running does nothing (exit 0).
    """
    runtime = _runtime(**opts)
    began = time.monotonic()
    try:
        stopped = runtime.stop(grace_s=grace)
    except HBaseError as exc:
        _fail(str(exc))
    if stopped:
        click.echo(f"HBase stopped in {time.monotonic() - began:.1f} s")
    else:
        click.echo(f"HBase is not running (home {runtime.paths.home})")


@hbase.command()
@_hbase_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def status(as_json: bool, **opts: Any) -> None:
    """Show processes, ports and whether a put/get round trip passes right now.

    Exit code: 0 ready, 1 running but not ready, 3 not running.
    """
    snapshot = _runtime(**opts).status()
    if as_json:
        click.echo(json.dumps(snapshot.to_json(), indent=2))
    else:
        click.echo(f"home: {snapshot.home}")
        for comp in snapshot.components:
            state = f"running  pid {comp.pid}" if comp.running else "stopped"
            ports = " ".join(f"{role}={port}" for role, port in comp.ports.items())
            click.echo(f"  {comp.name:<8} {state:<18} {ports}")
        verdict = {"ready": "ready", "not_ready": "NOT READY", "not_running": "not running"}
        click.echo(f"state: {verdict[snapshot.state]} ({snapshot.detail})")
    code = {"ready": EXIT_READY, "not_ready": EXIT_NOT_READY, "not_running": EXIT_NOT_RUNNING}
    sys.exit(code[snapshot.state])


if __name__ == "__main__":  # `python -m rowcast_dev.cli.hbase_cmd` works without the top-level CLI
    hbase()
