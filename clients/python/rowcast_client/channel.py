"""Where the services are, how channels to them are set up, and how long each call may take."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc

from rowcast_client.errors import DeadlineExceededError

DEFAULT_TIMEOUT_S = 2.0
"""A call's deadline when neither the call nor the client gives one."""

WATCH_TIMEOUT_S = 3600.0
"""watch_operation's deadline when the call gives none: a materialisation takes minutes."""

_READ_METHODS = [
    {"service": "rowcast.v1.AuditService", "method": "GetDecision"},
    {"service": "rowcast.v1.AuditService", "method": "ListDecisions"},
    {"service": "rowcast.v1.AuditService", "method": "CountDecisions"},
    {"service": "rowcast.v1.ModelService", "method": "ListModels"},
    {"service": "rowcast.v1.ModelService", "method": "GetModel"},
    {"service": "rowcast.v1.ModelService", "method": "ListVersions"},
    {"service": "rowcast.v1.ModelService", "method": "GetVersion"},
]
# Read-only calls are retried on UNAVAILABLE by gRPC itself, never Predict or writes.
SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": _READ_METHODS,
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)
CHANNEL_OPTIONS: list[tuple[str, str | int]] = [
    ("grpc.service_config", SERVICE_CONFIG),
    ("grpc.enable_retries", 1),
]


@dataclass(frozen=True, repr=False)
class Credentials:
    """How a client proves the servers are rowcast's and who it is.

    `ca` (PEM bytes) turns TLS on and is the CA the servers' certificates must chain to;
    `token` is sent as `authorization: Bearer <token>` on every call; `cert` + `key` (PEM)
    present a client certificate (mTLS). Without `ca` the channel is plain text, only for a
    server started with --insecure (a token is then refused: it would travel in clear)."""

    ca: bytes | None = None
    token: str | None = None
    cert: bytes | None = None
    key: bytes | None = None

    def __repr__(self) -> str:  # never print the token
        parts = [
            "tls" if self.ca else "plain text",
            "token" if self.token else "no token",
            "client certificate" if self.cert else "",
        ]
        return "Credentials(" + ", ".join(p for p in parts if p) + ")"

    def with_token(self, token: str | None) -> Credentials:
        return replace(self, token=token)

    @classmethod
    def from_files(
        cls,
        ca_file: str | Path | None = None,
        *,
        token: str | None = None,
        token_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
    ) -> Credentials:
        if token is None and token_file is not None:
            token = Path(token_file).read_text().strip()
        return cls(
            ca=Path(ca_file).read_bytes() if ca_file else None,
            token=token,
            cert=Path(cert_file).read_bytes() if cert_file else None,
            key=Path(key_file).read_bytes() if key_file else None,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Credentials:
        """ROWCAST_CA_FILE, ROWCAST_TOKEN (or ROWCAST_TOKEN_FILE), ROWCAST_CLIENT_CERT and
        ROWCAST_CLIENT_KEY; the CA and the token default to what `rowcast suite up` writes
        under ROWCAST_HOME (tls/ca.pem, auth/admin.token) when those files exist.
        ROWCAST_INSECURE=on: no TLS, no token."""
        env = os.environ if env is None else env
        if env.get("ROWCAST_INSECURE", "").strip().lower() in {"on", "1", "true", "yes"}:
            return cls()
        home = Path(env.get("ROWCAST_HOME", ".rowcast"))
        ca = env.get("ROWCAST_CA_FILE") or _existing(home / "tls" / "ca.pem")
        token = env.get("ROWCAST_TOKEN") or None
        token_file = env.get("ROWCAST_TOKEN_FILE") or (
            None if token else _existing(home / "auth" / "admin.token")
        )
        return cls.from_files(
            ca,
            token=token,
            token_file=token_file,
            cert_file=env.get("ROWCAST_CLIENT_CERT") or None,
            key_file=env.get("ROWCAST_CLIENT_KEY") or None,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """TLS (and the token as call credentials); None for a plain-text channel."""
        if self.ca is None:
            if self.token:
                raise ValueError(
                    "a token needs TLS: give the CA (ROWCAST_CA_FILE) or drop the token"
                )
            return None
        tls = grpc.ssl_channel_credentials(
            self.ca, private_key=self.key, certificate_chain=self.cert
        )
        if not self.token:
            return tls
        return grpc.composite_channel_credentials(
            tls, grpc.access_token_call_credentials(self.token)
        )


def _existing(path: Path) -> str | None:
    return str(path) if path.is_file() else None


@dataclass(frozen=True)
class Targets:
    """Addresses (host:port) of the three services, and how to reach them (`credentials`:
    TLS, token; plain text when None)."""

    prediction: str = "127.0.0.1:50051"
    audit: str = "127.0.0.1:50052"
    model: str = "127.0.0.1:50053"
    credentials: Credentials | None = field(default=None, compare=False)

    def secured(self, credentials: Credentials | None) -> Targets:
        return replace(self, credentials=credentials)


def aio_channel(
    target: str,
    credentials: Credentials | None,
    options: Sequence[tuple[str, Any]] = CHANNEL_OPTIONS,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    creds = None if credentials is None else credentials.channel_credentials()
    if creds is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
    return grpc.aio.secure_channel(target, creds, options=options, interceptors=interceptors)


def sync_channel(
    target: str,
    credentials: Credentials | None,
    options: Sequence[tuple[str, Any]] = CHANNEL_OPTIONS,
) -> grpc.Channel:
    creds = None if credentials is None else credentials.channel_credentials()
    if creds is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, creds, options=options)


def check_default_timeout(timeout_s: float) -> float:
    """A client's default deadline must be positive: 0 would fail every call."""
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s}")
    return timeout_s


def call_timeout(timeout: float | None, default_s: float) -> float:
    """The deadline of one call, in seconds from now: `timeout`, or `default_s` when it is None.

    A timeout of 0 or less (or NaN) has expired before the call starts, as a deadline does in
    every gRPC: DeadlineExceededError, and nothing is sent. grpcio alone would race such a call
    against its own deadline and sometimes deliver it.
    """
    if timeout is None:
        return default_s
    if not timeout > 0:
        raise DeadlineExceededError(
            f"the call's timeout of {timeout} s had expired before the call was sent"
        )
    return timeout
