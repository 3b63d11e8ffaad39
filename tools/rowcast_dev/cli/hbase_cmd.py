"""`rowcast hbase …`: fetch, start, stop, inspect and fault the embedded HBase (standalone, or
the cluster profile with `start --regionservers N`)."""

from __future__ import annotations

import json
import shlex
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from rowcast.config import HBaseSettings, Settings
from rowcast_dev.hbase.cluster import (
    ClusterHBase,
    ClusterOptions,
    ClusterStatus,
    env_exports,
    open_hbase,
    recorded_options,
)
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


def _settings(
    home: Path | None,
    thrift_port: int | None,
    thrift2_port: int | None,
    zk_port: int | None,
    master_port: int | None,
    regionserver_port: int | None,
) -> HBaseSettings:
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
    return settings


def _runtime(**opts: Any) -> StandaloneHBase | ClusterHBase:
    """The HBase of --home: the cluster it holds (data/cluster.json), else standalone."""
    try:
        return open_hbase(_settings(**opts))
    except HBaseError as exc:
        _fail(str(exc))


def _ports_line(status: HBaseStatus | ClusterStatus) -> str:
    if isinstance(status, HBaseStatus):
        return " ".join(f"{role}={port}" for role, port in status.ports.items())
    return " ".join(
        f"{p.name}=" + ",".join(str(port) for port in p.ports.values()) for p in status.processes
    )


def _pids_line(status: HBaseStatus | ClusterStatus) -> str:
    if isinstance(status, HBaseStatus):
        return " ".join(f"{c.name}={c.pid}" for c in status.components)
    return " ".join(f"{p.name}={p.pid}" for p in status.processes)


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group(name="hbase")
def hbase() -> None:
    """Run the embedded HBase that rowcast stores its tables in, all on 127.0.0.1.

    Standalone (the default): master + region server + ZooKeeper in one JVM, plus a Thrift1 and
    a Thrift2 gateway. Cluster profile (`start --regionservers N`): ZooKeeper, an HDFS NameNode
    and DataNodes, a master, N region servers and G Thrift1 + G Thrift2 gateways, each its own
    JVM (docs/hbase.md, "Cluster profile").

    Everything lives under --home; a home that holds a cluster remembers it, so the other
    commands need no flags. Ports default to the ROWCAST_HBASE_*_PORT variables (for a cluster:
    the first gateways, ZooKeeper, master and first region server; the rest are picked free
    on the first start and kept).
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
    default=None,
    help="Seconds to wait for readiness before giving up (and stopping) "
    "[default: 180 standalone, 300 cluster].",
)
@click.option(
    "--regionservers",
    type=click.IntRange(min=0),
    default=None,
    help="Run the cluster profile with N region servers (0: standalone) "
    "[default: what --home holds, else standalone].",
)
@click.option(
    "--gateways",
    type=click.IntRange(min=1),
    default=None,
    help="Cluster: Thrift1 gateways, and as many Thrift2 gateways [default: 2].",
)
@click.option(
    "--datanodes",
    type=click.IntRange(min=1),
    default=None,
    help="Cluster: HDFS DataNodes (blocks are kept twice when there are 2 or more) [default: 2].",
)
@click.option(
    "--no-hdfs",
    is_flag=True,
    default=False,
    help="Cluster: HBase root on the local disk instead of HDFS (WAL without hflush/hsync: "
    "acknowledged edits can be lost when a region server or the machine dies; docs/hbase.md).",
)
@click.option(
    "--region-replication",
    type=click.IntRange(min=1),
    default=None,
    help="Cluster: region replicas of version tables, at most N "
    "[default: 2, printed by `rowcast hbase env`].",
)
@click.option(
    "--primary-call-timeout-us",
    type=click.IntRange(min=0),
    default=None,
    help="Cluster: microseconds a gateway's TIMELINE read waits on the primary before asking "
    "the secondaries (hbase.client.primaryCallTimeout.get) [default: 10000].",
)
@click.option(
    "--zk-session-timeout-ms",
    type=click.IntRange(min=4000, max=40000),
    default=None,
    help="Cluster: ZooKeeper session of the HBase servers; a region server silent this long "
    "(killed, or SIGSTOPped) is declared dead and its regions move [default: 15000].",
)
def start(
    timeout: float | None,
    regionservers: int | None,
    gateways: int | None,
    datanodes: int | None,
    no_hdfs: bool,
    region_replication: int | None,
    primary_call_timeout_us: int | None,
    zk_session_timeout_ms: int | None,
    **opts: Any,
) -> None:
    """Start HBase in the background and wait until it serves.

    Standalone: until a put/get round trip succeeds. Cluster: until every region server has
    checked in and a round trip passes through every gateway. The JVMs outlive this command;
    stop them with `rowcast hbase stop`. Starting what already runs does nothing (exit 0), and
    starts whatever of it died. On failure whatever was started is stopped again and the log
    lines that explain it are printed (exit 1).
    """
    settings = _settings(**opts)
    recorded = recorded_options(settings.home)
    flags: dict[str, Any] = {
        "gateways": gateways,
        "datanodes": datanodes,
        "region_replication": region_replication,
        "primary_call_timeout_us": primary_call_timeout_us,
        "zk_session_timeout_ms": zk_session_timeout_ms,
    }
    if no_hdfs:
        flags["hdfs"] = False
    given = {key: value for key, value in flags.items() if value is not None}
    runtime: StandaloneHBase | ClusterHBase
    try:
        if regionservers == 0 or (regionservers is None and recorded is None):
            if given:
                _fail(f"--{next(iter(given)).replace('_', '-')} needs --regionservers N")
            if recorded is not None:
                _fail(f"{settings.home} holds a cluster; use another --home for standalone")
            runtime = StandaloneHBase(settings)
        else:
            base = recorded or ClusterOptions()
            if regionservers is not None:
                given["regionservers"] = regionservers
                if region_replication is None and recorded is None:
                    given["region_replication"] = min(base.region_replication, regionservers)
                    given["meta_replicas"] = min(base.meta_replicas, regionservers)
            if recorded is not None and given.get("hdfs", recorded.hdfs) != recorded.hdfs:
                _fail(f"{settings.home} was created with hdfs={recorded.hdfs}; it cannot change")
            runtime = ClusterHBase(settings, replace(base, **given))
    except HBaseError as exc:
        _fail(str(exc))
    began = time.monotonic()
    default_timeout = 300.0 if isinstance(runtime, ClusterHBase) else 180.0
    try:
        started = runtime.start(timeout_s=timeout or default_timeout)
    except HBaseStartError as exc:
        click.echo(f"error: {exc.message}", err=True)
        if exc.log_excerpt:
            click.echo(exc.log_excerpt, err=True)
            click.echo(f"logs: {runtime.paths.logs}", err=True)
        sys.exit(1)
    except HBaseError as exc:
        _fail(str(exc))
    status = runtime.status()
    what = "HBase cluster" if isinstance(runtime, ClusterHBase) else "HBase"
    if started:
        click.echo(f"{what} ready in {time.monotonic() - began:.1f} s (home {runtime.paths.home})")
    else:
        click.echo(f"{what} is already running (home {runtime.paths.home})")
    click.echo(f"ports: {_ports_line(status)}")
    click.echo(f"pids: {_pids_line(status)}")
    if isinstance(runtime, ClusterHBase):
        click.echo('point rowcast at it: eval "$(rowcast hbase env' + _home_flag(runtime) + ')"')


def _home_flag(runtime: StandaloneHBase | ClusterHBase) -> str:
    return f" --home {shlex.quote(str(runtime.paths.home))}"


@hbase.command()
@_hbase_options
@click.option(
    "--grace",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds the master (and region servers) get after SIGTERM before SIGKILL "
    "(gateways, HDFS, ZooKeeper: at most 20).",
)
def stop(grace: float, **opts: Any) -> None:
    """Stop the gateways, then the master (and region servers, HDFS, ZooKeeper), SIGTERM then
    SIGKILL after --grace; then any process left that carries the home's marker.

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
    elif isinstance(snapshot, HBaseStatus):
        click.echo(f"home: {snapshot.home}")
        for comp in snapshot.components:
            state = f"running  pid {comp.pid}" if comp.running else "stopped"
            ports = " ".join(f"{role}={port}" for role, port in comp.ports.items())
            click.echo(f"  {comp.name:<8} {state:<18} {ports}")
    else:
        click.echo(f"home: {snapshot.home} (cluster profile)")
        for proc in snapshot.processes:
            state = f"running  pid {proc.pid}" if proc.running else "stopped"
            rss = f"{proc.rss_bytes / 2**20:.0f} MiB" if proc.rss_bytes else ""
            ports = " ".join(f"{role}={port}" for role, port in proc.ports.items())
            click.echo(f"  {proc.name:<15} {state:<18} {rss:>8}  {ports:<34} {proc.log}")
    if not as_json:
        verdict = {"ready": "ready", "not_ready": "NOT READY", "not_running": "not running"}
        click.echo(f"state: {verdict[snapshot.state]} ({snapshot.detail})")
    code = {"ready": EXIT_READY, "not_ready": EXIT_NOT_READY, "not_running": EXIT_NOT_RUNNING}
    sys.exit(code[snapshot.state])


@hbase.command()
@_hbase_options
def env(**opts: Any) -> None:
    """Print the `export ROWCAST_...` lines that point rowcast's services at this HBase.

    For a cluster: every Thrift1 and Thrift2 gateway, its region replication, its ZooKeeper,
    and the first gateway as host/ports. Use as `eval "$(rowcast hbase env)"; rowcast suite up`.

    Exit code 3, printing nothing to standard output, when no HBase of this home is running.
    """
    runtime = _runtime(**opts)
    if not runtime.is_running():
        _fail(
            f"HBase is not running (home {runtime.paths.home}): start it with "
            "`rowcast hbase start`",
            EXIT_NOT_RUNNING,
        )
    if isinstance(runtime, ClusterHBase):
        settings = runtime.client_settings()
    else:
        settings = runtime.effective_settings()
    for name, value in env_exports(settings).items():
        click.echo(f"export {name}={shlex.quote(value)}")


_SIGNALS = {"KILL": signal.SIGKILL, "STOP": signal.SIGSTOP, "CONT": signal.SIGCONT,
            "TERM": signal.SIGTERM}  # fmt: skip


@hbase.command()
@_hbase_options
@click.argument("component")
@click.option(
    "--signal",
    "sig",
    type=click.Choice(sorted(_SIGNALS), case_sensitive=False),
    default="KILL",
    show_default=True,
    help="KILL (crash), STOP (freeze; resume with CONT), CONT, TERM (orderly stop).",
)
def kill(component: str, sig: str, **opts: Any) -> None:
    """Send a signal to one process, e.g. `rowcast hbase kill regionserver-2` (for trying faults
    by hand). COMPONENT is a name `rowcast hbase status` lists; bring it back with `restart`."""
    runtime = _runtime(**opts)
    try:
        if isinstance(runtime, ClusterHBase):
            runtime.kill(component, _SIGNALS[sig.upper()])
        elif component in ("master", "thrift", "thrift2"):
            runtime.kill(component, _SIGNALS[sig.upper()])  # type: ignore[arg-type]
        else:
            _fail(f"no component {component!r}; have master, thrift, thrift2")
    except HBaseError as exc:
        _fail(str(exc))
    click.echo(f"sent SIG{sig.upper()} to {component}")


@hbase.command()
@_hbase_options
@click.argument("component")
@click.option(
    "--timeout", type=float, default=120.0, show_default=True,
    help="Seconds to wait until it serves again.",
)  # fmt: skip
def restart(component: str, timeout: float, **opts: Any) -> None:
    """Start one process that died or was killed and wait until it serves again (cluster
    profile; for standalone, `rowcast hbase start` starts whatever is missing)."""
    runtime = _runtime(**opts)
    if not isinstance(runtime, ClusterHBase):
        _fail("restart is for the cluster profile; `rowcast hbase start` restarts what is missing")
    began = time.monotonic()
    try:
        runtime.restart(component, timeout_s=timeout)
    except HBaseStartError as exc:
        click.echo(f"error: {exc.message}", err=True)
        click.echo(exc.log_excerpt, err=True)
        sys.exit(1)
    except HBaseError as exc:
        _fail(str(exc))
    pid = runtime.pids().get(component)
    click.echo(f"{component} serving again in {time.monotonic() - began:.1f} s (pid {pid})")


if __name__ == "__main__":  # `python -m rowcast_dev.cli.hbase_cmd` works without the top-level CLI
    hbase()
