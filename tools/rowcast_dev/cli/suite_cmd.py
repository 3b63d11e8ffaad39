"""`rowcast suite up | down | status`: HBase and the three services together."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from rowcast.config import SecuritySettings, Settings
from rowcast.security.identity import Role
from rowcast_cli.security_cmd import init_security, write_token
from rowcast_dev.hbase.cluster import open_hbase
from rowcast_dev.hbase.runtime import HBaseError
from rowcast_dev.suite import Suite, SuiteError

#: The tokens `suite up` writes under ROWCAST_HOME/auth/: who may do what on a local suite.
#: Two people, so that the demo's augmentation is proposed by one and approved by the other.
SUITE_TOKENS: dict[str, tuple[str, frozenset[Role]]] = {
    "admin.token": (
        "admin",
        frozenset({Role.ADMIN, Role.READER, Role.AUDITOR, Role.PREDICTOR, Role.REVIEWER}),
    ),
    "approver.token": ("approver", frozenset({Role.APPROVER, Role.AUDITOR, Role.READER})),
    "predictor.token": ("predictor", frozenset({Role.PREDICTOR})),
}
SUITE_TOKEN_TTL_S = 30 * 86_400

INSECURE_WARNING = (
    "WARNING: --insecure: no TLS and no authentication. Anyone who reaches these ports can "
    "predict, read and write the audit and switch models. Local experiments only; clients "
    "need ROWCAST_INSECURE=on."
)


def prepare_security(sec: SecuritySettings) -> list[Path]:
    """Make the CA, keys and tokens a secure local suite needs (kept when present); return
    the token files."""
    for line in init_security(sec):
        click.echo(f"security: created {line}")
    tokens = []
    for file, (name, roles) in SUITE_TOKENS.items():
        path = sec.auth_dir / file
        if not path.exists():
            write_token(sec, name, roles, SUITE_TOKEN_TTL_S, path)
        tokens.append(path)
    return tokens


def how_to_call(settings: Settings) -> str:
    """grpcurl and ghz lines that work against this suite."""
    sec, sv = settings.security, settings.server
    if not sec.tls:
        return (
            f"  grpcurl -plaintext {sv.host}:{sv.prediction_port} list\n"
            f"  ghz --insecure --call rowcast.v1.PredictionService/Predict ... "
            f"{sv.host}:{sv.prediction_port}"
        )
    token = sec.auth_dir / "admin.token"
    predictor = sec.auth_dir / "predictor.token"
    return (
        f"  export ROWCAST_CA_FILE={sec.ca_file} ROWCAST_TOKEN_FILE={token}   # for rowcast\n"
        f'  grpcurl -cacert {sec.ca_file} -H "authorization: Bearer $(cat {token})" '
        f"{sv.host}:{sv.model_port} rowcast.v1.ModelService/ListModels\n"
        f'  ghz --cacert {sec.ca_file} --metadata "{{\\"authorization\\":\\"Bearer '
        f'$(cat {predictor})\\"}}" --config bench/ghz/predict.json '
        f"{sv.host}:{sv.prediction_port}"
    )


def bring_up(settings: Settings) -> None:
    """Start HBase (if needed) then the services; print where everything listens."""
    if settings.security.tls:
        prepare_security(settings.security)
    else:
        click.echo(INSECURE_WARNING, err=True)
    # The cluster profile when ROWCAST_HOME holds one (`eval "$(rowcast hbase env)"`).
    hb = open_hbase(settings.hbase)
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
    sec = settings.security
    if sec.tls:
        tokens = ", ".join(str(sec.auth_dir / f) for f in SUITE_TOKENS)
        click.echo(f"TLS CA: {sec.ca_file}  tokens: {tokens}")
    click.echo("call it:\n" + how_to_call(settings))


def suite_settings(insecure: bool) -> Settings:
    settings = Settings.from_env()
    if insecure:
        settings = dataclasses.replace(settings, security=settings.security.insecure())
    return settings


@click.group()
def suite() -> None:
    """Run HBase and the three services in the background on this machine."""


@suite.command()
@click.option(
    "--insecure",
    is_flag=True,
    help="No TLS and no authentication (local experiments only; prints a warning).",
)
def up(insecure: bool) -> None:
    """Start standalone HBase and the prediction, audit and model services (idempotent).

    Secure by default: TLS with a local CA and token authentication; the CA (tls/ca.pem) and
    tokens (auth/admin.token, approver.token, predictor.token) are written under ROWCAST_HOME
    and the command prints how to call the suite with grpcurl and ghz."""
    bring_up(suite_settings(insecure))


@suite.command()
@click.option("--keep-hbase", is_flag=True, help="Stop only the services.")
def down(keep_hbase: bool) -> None:
    """Stop the services (gracefully) and standalone HBase."""
    settings = Settings.from_env()
    stopped = Suite(settings).stop()
    click.echo(f"stopped services: {', '.join(stopped) or 'none were running'}")
    if not keep_hbase:
        open_hbase(settings.hbase).stop()
        click.echo("stopped HBase")


@suite.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Show which services run and answer health checks. Exit 0 when all serve, else 1."""
    settings = Settings.from_env()
    statuses = Suite(settings).status()
    hbase_ready = open_hbase(settings.hbase).ready()
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
