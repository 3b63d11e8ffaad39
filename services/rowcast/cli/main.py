"""`rowcast`: the command line of the suite (HBase, services, jobs, admin calls)."""

from __future__ import annotations

import asyncio
import logging

import click

from rowcast.cli.admin_cmd import audit, models, predict
from rowcast.cli.demo_cmd import demo
from rowcast.cli.hbase_cmd import hbase
from rowcast.cli.jobs_cmd import publish
from rowcast.cli.suite_cmd import suite
from rowcast.config import Settings
from rowcast.server import serve_until_signal


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
def serve(service: str, port: int | None) -> None:
    """Run one service in the foreground until SIGINT/SIGTERM (then stop gracefully).

    Ports and HBase location come from ROWCAST_* environment variables (see docs/config.md).
    """
    from rowcast import apps

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings.from_env()
    starters = {
        "prediction": apps.start_prediction_server,
        "audit": apps.start_audit_server,
        "model": apps.start_model_server,
    }

    async def run() -> None:
        running = await starters[service](settings, port)
        await serve_until_signal(running, settings.server.grace_s, f"rowcast {service} service")

    asyncio.run(run())


cli.add_command(hbase)
cli.add_command(suite)
cli.add_command(publish)
cli.add_command(demo)
cli.add_command(models)
cli.add_command(audit)
cli.add_command(predict)


def main() -> None:
    cli(prog_name="rowcast")


if __name__ == "__main__":
    main()
