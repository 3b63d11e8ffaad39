"""Typed errors of the rowcast client, mapped back from gRPC status and its google.rpc details."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


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
    )
}


def from_rpc_error(exc: grpc.RpcError) -> RowcastClientError:
    """The typed error for a failed call, with reason and field violations when present."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    message = exc.details() if hasattr(exc, "details") else str(exc)
    reason = ""
    violations: list[FieldViolation] = []
    status = rpc_status.from_call(exc) if isinstance(exc, grpc.Call) else None
    if status is None and hasattr(exc, "trailing_metadata"):
        status = _status_from_metadata(exc.trailing_metadata(), code, message or "")
    if status is not None:
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            bad = error_details_pb2.BadRequest()
            if detail.Is(info.DESCRIPTOR):
                detail.Unpack(info)
                reason = info.reason
            elif detail.Is(bad.DESCRIPTOR):
                detail.Unpack(bad)
                violations.extend(
                    FieldViolation(v.field, v.description) for v in bad.field_violations
                )
    cls = ERROR_BY_CODE.get(code, RowcastClientError)
    return cls(message or code.name, code=code, reason=reason, violations=tuple(violations))


def _status_from_metadata(
    metadata: object, code: grpc.StatusCode, message: str
) -> object | None:
    """grpc.aio errors are not grpc.Call: read the status-details-bin trailer directly."""
    from google.rpc import status_pb2

    for key, value in metadata or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            return status
    return None
