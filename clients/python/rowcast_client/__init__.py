"""Python client of rowcast's PredictionService, AuditService and ModelService."""

from rowcast_client.aio import AsyncRowcastClient
from rowcast_client.channel import DEFAULT_TIMEOUT_S, Credentials, Targets
from rowcast_client.errors import (
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    RowcastClientError,
    UnauthenticatedError,
    UnavailableError,
)
from rowcast_client.messages import FeatureInput
from rowcast_client.sync import RowcastClient

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "AlreadyExistsError",
    "AsyncRowcastClient",
    "Credentials",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FeatureInput",
    "FieldViolation",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "RowcastClient",
    "RowcastClientError",
    "Targets",
    "UnauthenticatedError",
    "UnavailableError",
]
