"""Where the CLI's calls go and with which credentials: ROWCAST_* ports (docs/config.md), the
CA and token from ROWCAST_CA_FILE / ROWCAST_TOKEN(_FILE), by default what `rowcast suite up`
writes under ROWCAST_HOME (tls/ca.pem, auth/admin.token); ROWCAST_INSECURE=on for a suite
started with --insecure."""

from __future__ import annotations

from rowcast.config import Settings
from rowcast_client import Credentials, Targets


def targets_from_env() -> Targets:
    settings = Settings.from_env()
    s = settings.server
    return Targets(
        prediction=f"{s.host}:{s.prediction_port}",
        audit=f"{s.host}:{s.audit_port}",
        model=f"{s.host}:{s.model_port}",
        credentials=Credentials.from_env() if settings.security.tls else None,
    )
