"""`rowcast`: the command line of the suite (HBase, services, jobs, admin calls)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from importlib.metadata import entry_points

import click

from rowcast.config import Settings
from rowcast.errors import FailedPrecondition
from rowcast.server import serve_until_signal
from rowcast.telemetry.logs import configure as configure_logging
from rowcast_cli.admin_cmd import predict
from rowcast_cli.audit_cmd import audit
from rowcast_cli.datasets_cmd import datasets_group
from rowcast_cli.jobs_cmd import publish
from rowcast_cli.models_cmd import models
from rowcast_cli.security_cmd import auth, certs
from rowcast_cli.top_cmd import top

#: Entry-point group through which other distributions add commands (rowcast-dev adds
#: `hbase`, `suite`, `demo`, `bench` and `chaos`).
PLUGIN_GROUP = "rowcast.commands"


class ProcessCount(click.ParamType[int, object]):
    """A number of server processes (1 or more), or `auto`: one per usable core."""

    name = "N|auto"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        if isinstance(value, int):
            count = value
        elif str(value).strip().lower() == "auto":
            return usable_cores()
        else:
            try:
                count = int(str(value))
            except ValueError:
                self.fail(f"{value!r} is neither a number nor `auto`", param, ctx)
        if count < 1:
            self.fail(f"{count} is less than 1", param, ctx)
        return count


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, so `taskset` is respected)."""
    return max(1, len(os.sched_getaffinity(0)))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """rowcast: serve machine-learning decisions from flattened model tables in HBase.

    \b
    Typical session:
      rowcast demo           start HBase + the three services, publish the demo model
      rowcast models list    what is registered and which version is active
      rowcast suite down     stop the services and HBase
    """


@cli.command()
@click.argument("service", type=click.Choice(["prediction", "audit", "model"]))
@click.option("--port", type=int, default=None, help="Port to bind (default: from settings).")
@click.option(
    "--processes",
    type=ProcessCount(),
    default="1",
    show_default=True,
    help="Server processes sharing the port through SO_REUSEPORT (the kernel spreads "
    "connections over them), or `auto`: one per core this process may run on; process i "
    "serves its metrics on the metrics port + i.",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="No TLS and no authentication (local experiments only; prints a warning). Same as "
    "ROWCAST_INSECURE=on.",
)
def serve(service: str, port: int | None, processes: int, insecure: bool) -> None:
    """Run one service in the foreground until SIGINT/SIGTERM (then stop gracefully).

    Ports and HBase location come from ROWCAST_* environment variables (see docs/config.md).
    Secure by default: TLS from ROWCAST_HOME/tls/ and token authentication with the key in
    ROWCAST_HOME/auth/ (`rowcast auth init` makes both; docs/security.md).
    """
    from rowcast import apps

    if insecure:
        os.environ["ROWCAST_INSECURE"] = "on"
    if processes > 1:
        raise SystemExit(run_replicas(service, port, processes))
    settings = Settings.from_env()
    if not settings.security.tls:
        click.echo(
            "WARNING: serving without TLS and without authentication (--insecure): anyone "
            "who reaches the port can call every RPC. Local experiments only.",
            err=True,
        )
    # One JSON object per line unless ROWCAST_LOG_FORMAT=text (docs/observability.md).
    configure_logging(settings.logs, default="json")
    starters = {
        "prediction": apps.start_prediction_server,
        "audit": apps.start_audit_server,
        "model": apps.start_model_server,
    }

    async def run() -> None:
        running = await starters[service](settings, port)
        await serve_until_signal(running, settings.server.grace_s, f"rowcast {service} service")

    try:
        asyncio.run(run())
    except FailedPrecondition as exc:  # e.g. TLS or token files missing
        raise click.ClickException(exc.message) from exc


cli.add_command(publish)
cli.add_command(models)
cli.add_command(datasets_group)
cli.add_command(audit)
cli.add_command(predict)
cli.add_command(top)
cli.add_command(certs)
cli.add_command(auth)


def add_plugin_commands(group: click.Group) -> None:
    """Add the commands other installed distributions register under PLUGIN_GROUP."""
    for entry in entry_points(group=PLUGIN_GROUP):
        command = entry.load()
        if isinstance(command, click.Command):
            group.add_command(command, entry.name)


add_plugin_commands(cli)


def run_replicas(service: str, port: int | None, processes: int) -> int:
    """Start `processes` copies of the service on one port (SO_REUSEPORT), forward SIGTERM and
    SIGINT to them, and wait for all; the exit code is the worst of theirs. Copy i is told its
    index (ROWCAST_REPLICA_INDEX): its metrics endpoint binds the configured port + i."""
    args = [sys.executable, "-m", "rowcast_cli.main", "serve", service]
    if port is not None:
        args += ["--port", str(port)]
    env = {**os.environ, "ROWCAST_REUSE_PORT": "on"}
    children = [
        subprocess.Popen(args, env={**env, "ROWCAST_REPLICA_INDEX": str(index)})
        for index in range(processes)
    ]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return max(child.wait() for child in children)


def main() -> None:
    cli(prog_name="rowcast")


if __name__ == "__main__":
    main()
