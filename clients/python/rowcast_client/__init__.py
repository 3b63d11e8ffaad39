"""Python client of rowcast's PredictionService, AuditService and ModelService."""

from rowcast_client.client import AsyncRowcastClient, RowcastClient, Targets
from rowcast_client.errors import (
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    RowcastClientError,
    UnavailableError,
)

__all__ = [
    "AsyncRowcastClient",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FieldViolation",
    "InvalidArgumentError",
    "NotFoundError",
    "ResourceExhaustedError",
    "RowcastClient",
    "RowcastClientError",
    "Targets",
    "UnavailableError",
]
