"""The one place where domain errors become gRPC status codes with google.rpc details.

Every status carries an `ErrorInfo` (reason unique in the `rowcast.dev` domain); bad input also
carries a `BadRequest` with one field violation per bad field. tests/unit/test_grpc_errors.py
proves that every RowcastError subclass is mapped.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from rowcast import errors

DOMAIN = "rowcast.dev"

#: Most specific class first: the first isinstance match wins.
STATUS_BY_ERROR: tuple[tuple[type[errors.RowcastError], grpc.StatusCode], ...] = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.NoActiveVersion, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.StoreUnavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.StoreRejected, grpc.StatusCode.INTERNAL),
    (errors.Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.RowcastError, grpc.StatusCode.INTERNAL),
)


def status_code_for(error: errors.RowcastError) -> grpc.StatusCode:
    for cls, code in STATUS_BY_ERROR:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.INTERNAL


def to_status(error: errors.RowcastError) -> grpc.Status:
    """A rich status (code, message, ErrorInfo, BadRequest) for a domain error."""
    code = status_code_for(error)
    details: list[any_pb2.Any] = []
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN))
    details.append(info)
    if isinstance(error, errors.InvalidArgument) and error.violations:
        bad = any_pb2.Any()
        bad.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in error.violations
                ]
            )
        )
        details.append(bad)
    status = status_pb2.Status(
        code=getattr(code_pb2, code.name), message=error.message, details=details
    )
    rich: grpc.Status = rpc_status.to_status(status)
    if isinstance(error, errors.StoreUnavailable) and not error.retryable:
        # gRPC server pushback: a negative delay tells clients' retry policies not to retry.
        return _Status(rich.code, rich.details, (*rich.trailing_metadata, (PUSHBACK, "-1")))
    return rich


PUSHBACK = "grpc-retry-pushback-ms"


@dataclasses.dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


async def abort(
    context: grpc.aio.ServicerContext[object, object], error: errors.RowcastError
) -> None:
    """Abort the call with the error's rich status (never returns)."""
    await context.abort_with_status(to_status(error))


Handler = Callable[[Any, Any, Any], Awaitable[Any]]


def handles_errors(method: Handler) -> Handler:
    """Decorate a servicer method: a RowcastError it raises aborts the call with its status."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: Any) -> Any:
        try:
            return await method(self, request, context)
        except errors.RowcastError as error:
            await abort(context, error)

    return wrapper
