"""`rowcast certs` (the local CA and certificates) and `rowcast auth` (signing key, tokens,
revocation). Files go under ROWCAST_HOME (docs/security.md): tls/ (ca.pem is the CA) and auth/
(token-signing.key stays on the machine that issues tokens; servers need only the .pub)."""

from __future__ import annotations

import asyncio
import getpass
import re
import sys
from pathlib import Path

import click

from rowcast.config import SecuritySettings, Settings
from rowcast.errors import InvalidArgument
from rowcast.security.certs import DEFAULT_HOSTS, init_ca, issue_client_cert, write_private
from rowcast.security.chain_key import load_chain_key
from rowcast.security.identity import ROLE_NAMES, Role
from rowcast.security.runtime import RECORDER_CERT, RECORDER_KEY
from rowcast.security.tokens import issue_token, new_signing_key, parse_roles
from rowcast.store.client import HBaseClient
from rowcast.store.revocations import RevocationStore

_TTL = re.compile(r"^(\d+)([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
#: The prediction servers' own token (role recorder) lives as long as the CA's server cert.
SERVICE_TTL_S = 365 * 86_400


def parse_ttl(value: str) -> int:
    """`90d`, `12h`, `30m`, `3600s` or plain seconds."""
    match = _TTL.match(value.strip().lower())
    if not match or int(match.group(1)) <= 0:
        raise click.BadParameter(f"{value!r}: a positive number with s, m, h or d (e.g. 30d)")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def _security() -> SecuritySettings:
    return Settings.from_env().security


def ensure_signing_key(sec: SecuritySettings) -> bool:
    """Create the token signing key pair if missing; True when created."""
    if sec.token_private_key_file.exists() or sec.token_public_key_file.exists():
        return False
    private, public = new_signing_key()
    write_private(sec.token_private_key_file, private)
    sec.token_public_key_file.write_bytes(public)
    return True


def write_token(
    sec: SecuritySettings, name: str, roles: frozenset[Role], ttl_s: int, out: Path
) -> str:
    issued = issue_token(sec.token_private_key_file.read_bytes(), name, roles, ttl_s)
    write_private(out, (issued.token + "\n").encode())
    return issued.token_id


def init_security(sec: SecuritySettings, hosts: tuple[str, ...] = DEFAULT_HOSTS) -> list[str]:
    """Everything a secure suite on one machine needs, made when missing: the CA and server
    certificate, a recorder client certificate, the token signing key, the audit chain key and
    the prediction servers' recorder token. Returns what was made."""
    made: list[str] = []
    if init_ca(sec.tls_dir, hosts):
        made.append(f"CA and server certificate in {sec.tls_dir}")
    if not (sec.tls_dir / RECORDER_CERT).exists():
        paths = issue_client_cert(
            sec.tls_dir, "rowcast-recorder", frozenset({Role.RECORDER}), sec.tls_dir
        )
        paths.cert.rename(sec.tls_dir / RECORDER_CERT)
        paths.key.rename(sec.tls_dir / RECORDER_KEY)
        made.append(f"recorder client certificate {sec.tls_dir / RECORDER_CERT}")
    if ensure_signing_key(sec):
        made.append(f"token signing key {sec.token_private_key_file}")
    if not sec.chain_key_file.exists():
        load_chain_key(sec.chain_key_file, create=True)
        made.append(f"audit chain key {sec.chain_key_file}")
    if not sec.recorder_token_file.exists():
        write_token(
            sec,
            "rowcast-recorder",
            frozenset({Role.RECORDER}),
            SERVICE_TTL_S,
            sec.recorder_token_file,
        )
        made.append(f"recorder token {sec.recorder_token_file}")
    return made


@click.group()
def certs() -> None:
    """The local certificate authority for TLS (files under ROWCAST_HOME/tls/)."""


@certs.command("init")
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="A name or IP the servers are reached by (repeatable; default localhost, 127.0.0.1, ::1).",
)
@click.option(
    "--force", is_flag=True, help="Replace an existing CA (clients must get the new ca.pem)."
)
def certs_init(hosts: tuple[str, ...], force: bool) -> None:
    """Create a CA (ca.pem) and the servers' certificate (server.pem, server-key.pem).

    Rotation: run again with --force (or drop in files from your own CA) and restart the
    servers one at a time; clients need the new ca.pem first."""
    sec = _security()
    made = init_ca(sec.tls_dir, hosts or DEFAULT_HOSTS, force=force)
    click.echo(("created" if made else "kept the existing") + f" CA {sec.ca_file}")


@certs.command("issue")
@click.option("--name", required=True, help="The identity (certificate CN).")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    help=f"One of {', '.join(ROLE_NAMES)} (repeatable).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory (default ROWCAST_HOME/tls/clients).",
)
def certs_issue(name: str, roles: tuple[str, ...], out: Path | None) -> None:
    """A client certificate for mTLS (ROWCAST_CLIENT_CERTS=optional|require on the servers)."""
    sec = _security()
    try:
        paths = issue_client_cert(
            sec.tls_dir, name, parse_roles(roles), out or sec.tls_dir / "clients"
        )
    except InvalidArgument as exc:
        raise click.BadParameter(exc.message) from exc
    click.echo(f"certificate {paths.cert}\nkey {paths.key}\nCA {paths.ca}")


@click.group()
def auth() -> None:
    """Tokens: the signing key, issuing and revoking (files under ROWCAST_HOME/auth/)."""


@auth.command("init")
def auth_init() -> None:
    """Create what a secure suite needs when missing: CA + certificates, the token signing
    key, the audit chain key and the prediction servers' recorder token."""
    made = init_security(_security())
    for line in made or ["everything was there already"]:
        click.echo(line)


@auth.command("issue")
@click.option("--name", required=True, help="Who the token is for (recorded as actor/creator).")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    help=f"One of {', '.join(ROLE_NAMES)} (repeatable, or comma-separated).",
)
@click.option("--ttl", default="30d", show_default=True, help="Lifetime: 90d, 12h, 30m or seconds.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write it to this file (mode 0600).",
)
def auth_issue(name: str, roles: tuple[str, ...], ttl: str, out: Path | None) -> None:
    """Print a signed token (EdDSA JWT) for NAME with ROLEs; its id (for revoke) goes to stderr."""
    sec = _security()
    if not sec.token_private_key_file.exists():
        raise click.ClickException(
            f"no signing key at {sec.token_private_key_file}: run `rowcast auth init` first"
        )
    try:
        issued = issue_token(
            sec.token_private_key_file.read_bytes(), name, parse_roles(roles), parse_ttl(ttl)
        )
    except InvalidArgument as exc:
        raise click.BadParameter(exc.message) from exc
    if out is not None:
        write_private(out, (issued.token + "\n").encode())
    click.echo(issued.token)
    click.echo(f"token id {issued.token_id}, expires at {issued.expires_at} (unix time)", err=True)


@auth.command("revoke")
@click.option("--token-id", default=None, help="Revoke one token (its id, printed by issue).")
@click.option("--name", default=None, help="Revoke every token of NAME issued until now.")
@click.option("--reason", default="", help="Why (recorded).")
def auth_revoke(token_id: str | None, name: str | None, reason: str) -> None:
    """Revoke tokens, in HBase: every server refuses them within ROWCAST_REVOCATION_REFRESH_S
    (2 s by default), without a restart."""
    if (token_id is None) == (name is None):
        raise click.UsageError("give exactly one of --token-id and --name")
    settings = Settings.from_env()
    client = HBaseClient(settings.hbase)
    store = RevocationStore(client)
    by = getpass.getuser()
    try:
        if token_id is not None:
            asyncio.run(
                store.revoke_token(token_id, by, reason, timeout_s=settings.hbase.timeout_s)
            )
            click.echo(f"revoked token {token_id}")
        elif name is not None:
            asyncio.run(store.revoke_name(name, by, reason, timeout_s=settings.hbase.timeout_s))
            click.echo(f"revoked every token of {name!r} issued until now")
    finally:
        client.close()


@auth.command("revoked")
def auth_revoked() -> None:
    """List what is revoked."""
    settings = Settings.from_env()
    client = HBaseClient(settings.hbase)
    try:
        entries = asyncio.run(RevocationStore(client).list(timeout_s=settings.hbase.timeout_s))
    finally:
        client.close()
    for e in entries:
        click.echo(f"{e.kind}\t{e.subject}\t{e.at}\t{e.by}\t{e.reason}")
    if not entries:
        click.echo("nothing is revoked", err=sys.stderr.isatty())
