"""Domain errors. Raised by the core, the store and the jobs; mapped to gRPC status in one place
(`rowcast.grpc_errors`). Each carries a stable machine-readable `reason` (the ErrorInfo reason)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One bad input field: which field (a path such as `features.balance`) and what is wrong."""

    field: str
    description: str


class RowcastError(Exception):
    """Base of every rowcast domain error."""

    reason = "ROWCAST_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(RowcastError):
    """The caller's input is malformed; `violations` names each bad field."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, message: str, violations: list[FieldViolation] | None = None) -> None:
        super().__init__(message)
        self.violations = violations or []

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        """One bad field; the message names it."""
        return cls(f"{field}: {description}", [FieldViolation(field, description)])

    def prefixed(self, prefix: str) -> InvalidArgument:
        """The same error with every field path prefixed (e.g. `inputs[3].`)."""
        if not prefix:
            return self
        violations = [FieldViolation(prefix + v.field, v.description) for v in self.violations]
        return InvalidArgument(
            "; ".join(f"{v.field}: {v.description}" for v in violations) or self.message,
            violations,
        )


class NotFound(RowcastError):
    """A model, version or decision that does not exist."""

    reason = "NOT_FOUND"


class ModelNotFound(NotFound):
    reason = "MODEL_NOT_FOUND"


class VersionNotFound(NotFound):
    reason = "VERSION_NOT_FOUND"


class DecisionNotFound(NotFound):
    reason = "DECISION_NOT_FOUND"


class RowNotFound(NotFound):
    """The version's table has no row for the key (an incomplete or damaged table)."""

    reason = "PREDICTION_ROW_NOT_FOUND"


class NoActiveVersion(RowcastError):
    """The model exists but no version is active yet."""

    reason = "NO_ACTIVE_VERSION"


class FailedPrecondition(RowcastError):
    """The request is valid but the target is in the wrong state."""

    reason = "FAILED_PRECONDITION"


class VersionNotReady(FailedPrecondition):
    reason = "VERSION_NOT_READY"


class VerificationFailed(FailedPrecondition):
    """A materialised table failed the verification gate (row count, re-scored sample or
    held-out lookups); the version is FAILED."""

    reason = "VERSION_VERIFICATION_FAILED"


class AlreadyExists(RowcastError):
    reason = "ALREADY_EXISTS"


class DecisionConflict(AlreadyExists):
    """A decision id already recorded with other content: the audit is written once."""

    reason = "DECISION_CONFLICT"


class Unauthenticated(RowcastError):
    """The call carries no credential, or one that is malformed, expired or revoked."""

    reason = "UNAUTHENTICATED"


class PermissionDenied(RowcastError):
    """The caller is authenticated but its roles do not allow the call (or, for a review, it
    is the identity that proposed what it reviews)."""

    reason = "PERMISSION_DENIED"


class StoreUnavailable(RowcastError):
    """HBase (its Thrift gateway) could not be reached or did not answer in time.

    `retryable` is False when the caller's own deadline ran out waiting: a retry within the
    same deadline cannot succeed, so the status tells gRPC clients not to retry.
    """

    reason = "STORE_UNAVAILABLE"

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class StoreRejected(RowcastError):
    """HBase (or its ZooKeeper) refused a request as malformed, or answered in a way rowcast
    does not expect: a rowcast bug, never the caller's input, and a retry cannot help."""

    reason = "STORE_REJECTED"


class Overloaded(RowcastError):
    """The server sheds load rather than queue without bound."""

    reason = "OVERLOADED"


class DeadlineExceeded(RowcastError):
    """The caller's deadline ran out before the work could finish."""

    reason = "DEADLINE_EXCEEDED"
