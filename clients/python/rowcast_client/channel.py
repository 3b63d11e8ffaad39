"""Where the services are, how channels to them are set up, and how long each call may take."""

from __future__ import annotations

import json
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Targets:
    """Addresses (host:port) of the three services."""

    prediction: str = "127.0.0.1:50051"
    audit: str = "127.0.0.1:50052"
    model: str = "127.0.0.1:50053"


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
