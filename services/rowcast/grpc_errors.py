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
from google.protobuf.message import Message
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


#: The most a status may take in the trailers (grpc-message percent-encoded, plus
#: grpc-status-details-bin in base64): C-core clients, Python's own, refuse trailers over 8 KiB
#: with a RESOURCE_EXHAUSTED of their own, and the caller would never see the real error.
MAX_STATUS_BYTES = 6 * 1024
#: A message longer than this is cut (it says how long it was).
MAX_MESSAGE_CHARS = 2_000
#: The ErrorInfo metadata key counting the field violations the BadRequest leaves out.
OMITTED_VIOLATIONS = "omitted_violations"


def to_status(error: errors.RowcastError) -> grpc.Status:
    """A rich status (code, message, ErrorInfo, BadRequest) for a domain error, bounded: at
    most MAX_NAMED_VIOLATIONS violations (ErrorInfo counts the rest), each field and
    description clipped, and the whole under MAX_STATUS_BYTES whatever the error holds."""
    code = status_code_for(error)
    violations = error.violations if isinstance(error, errors.InvalidArgument) else []
    kept = [
        error_details_pb2.BadRequest.FieldViolation(
            field=errors.clipped(v.field),
            description=errors.clipped(v.description, errors.MAX_DESCRIPTION_CHARS),
        )
        for v in violations[: errors.MAX_NAMED_VIOLATIONS]
    ]
    message_chars = MAX_MESSAGE_CHARS
    while True:
        status = _status_pb(
            code, error, errors.clipped(error.message, message_chars), kept, len(violations)
        )
        if _trailer_bytes(status) <= MAX_STATUS_BYTES:
            break
        # Multi-byte text costs up to 12 bytes a character once percent-encoded: give up
        # violations first, then message.
        if kept:
            kept.pop()
        else:
            message_chars //= 2
    rich: grpc.Status = rpc_status.to_status(status)
    if isinstance(error, errors.StoreUnavailable) and not error.retryable:
        # gRPC server pushback: a negative delay tells clients' retry policies not to retry.
        return _Status(rich.code, rich.details, (*rich.trailing_metadata, (PUSHBACK, "-1")))
    return rich


def _status_pb(
    code: grpc.StatusCode,
    error: errors.RowcastError,
    message: str,
    kept: list[error_details_pb2.BadRequest.FieldViolation],
    violation_count: int,
) -> status_pb2.Status:
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN)
    if violation_count > len(kept):
        info.metadata[OMITTED_VIOLATIONS] = str(violation_count - len(kept))
    details = [_packed(info)]
    if kept:
        details.append(_packed(error_details_pb2.BadRequest(field_violations=kept)))
    return status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=details)


def _packed(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _trailer_bytes(status: status_pb2.Status) -> int:
    """What the status takes in the trailers: grpc-message percent-encoded (printable ASCII
    but `%` as is, every other byte as %XX) and the details in base64."""
    encoded = sum(1 if 0x20 <= b <= 0x7E and b != 0x25 else 3 for b in status.message.encode())
    return encoded + 4 * -(-int(status.ByteSize()) // 3)


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
