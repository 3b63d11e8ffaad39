"""Typed errors of the rowcast client, mapped back from gRPC status and its google.rpc details."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from google.rpc.status_pb2 import Status


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class RowcastClientError(Exception):
    """A failed rowcast call: its status code, message, ErrorInfo reason and bad fields."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        violations: tuple[FieldViolation, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.reason = reason
        self.violations = violations

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class InvalidArgumentError(RowcastClientError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(RowcastClientError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPreconditionError(RowcastClientError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class AlreadyExistsError(RowcastClientError):
    code = grpc.StatusCode.ALREADY_EXISTS


class UnavailableError(RowcastClientError):
    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhaustedError(RowcastClientError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceededError(RowcastClientError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class UnauthenticatedError(RowcastClientError):
    """No credentials, or a token that is malformed, expired or revoked."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDeniedError(RowcastClientError):
    """The caller's roles do not allow the call (the message names the role needed)."""

    code = grpc.StatusCode.PERMISSION_DENIED


ERROR_BY_CODE: dict[grpc.StatusCode, type[RowcastClientError]] = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        NotFoundError,
        FailedPreconditionError,
        AlreadyExistsError,
        UnavailableError,
        ResourceExhaustedError,
        DeadlineExceededError,
        UnauthenticatedError,
        PermissionDeniedError,
    )
}


def from_rpc_error(exc: grpc.RpcError) -> RowcastClientError:
    """The typed error for a failed call, with reason and field violations when present.

    Works for sync errors (grpc.Call) and grpc.aio errors alike: both carry the rich status in
    the `grpc-status-details-bin` trailer.
    """
    code: grpc.StatusCode = getattr(exc, "code", lambda: grpc.StatusCode.UNKNOWN)()
    message: str = getattr(exc, "details", lambda: str(exc))() or code.name
    reason = ""
    violations: list[FieldViolation] = []
    status = _status_from_trailer(getattr(exc, "trailing_metadata", lambda: ())())
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        bad = error_details_pb2.BadRequest()
        if detail.Is(info.DESCRIPTOR):
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(bad.DESCRIPTOR):
            detail.Unpack(bad)
            violations.extend(FieldViolation(v.field, v.description) for v in bad.field_violations)
    cls = ERROR_BY_CODE.get(code, RowcastClientError)
    return cls(message, code=code, reason=reason, violations=tuple(violations))


def _status_from_trailer(metadata: Iterable[tuple[str, str | bytes]] | None) -> Status | None:
    for key, value in metadata or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            return Status.FromString(value)
    return None
