"""Where the CLI's calls go and with which credentials: ROWCAST_* ports (docs/config.md), the
CA and token from ROWCAST_CA_FILE / ROWCAST_TOKEN(_FILE), by default what `rowcast suite up`
writes under ROWCAST_HOME (tls/ca.pem, auth/admin.token); ROWCAST_INSECURE=on for a suite
started with --insecure."""

from __future__ import annotations

import os

import click

from rowcast.config import Settings
from rowcast_client import Credentials, Targets


def targets_from_env() -> Targets:
    """The services and credentials; a clear error when TLS is expected and no CA is known
    (rather than a plain-text call that fails its handshake)."""
    settings = Settings.from_env()
    s = settings.server
    credentials = None
    sec = settings.security
    if sec.tls:
        env = dict(os.environ)
        # ROWCAST_TLS_DIR / ROWCAST_AUTH_DIR move the files: look there first.
        if not env.get("ROWCAST_CA_FILE") and sec.ca_file.is_file():
            env["ROWCAST_CA_FILE"] = str(sec.ca_file)
        admin = sec.auth_dir / "admin.token"
        if not env.get("ROWCAST_TOKEN") and not env.get("ROWCAST_TOKEN_FILE") and admin.is_file():
            env["ROWCAST_TOKEN_FILE"] = str(admin)
        credentials = Credentials.from_env(env)
        if credentials.ca is None:
            raise click.ClickException(
                f"no CA to check the servers against: set ROWCAST_CA_FILE, or ROWCAST_HOME to "
                f"a home with tls/ca.pem (looked in {settings.security.ca_file}); for a suite "
                "started with --insecure, set ROWCAST_INSECURE=on"
            )
    return Targets(
        prediction=f"{s.host}:{s.prediction_port}",
        audit=f"{s.host}:{s.audit_port}",
        model=f"{s.host}:{s.model_port}",
        credentials=credentials,
    )
