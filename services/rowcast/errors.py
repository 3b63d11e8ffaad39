"""Domain errors. Raised by the core, the store and the jobs; mapped to gRPC status in one place
(`rowcast.grpc_errors`). Each carries a stable machine-readable `reason` (the ErrorInfo reason)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

#: How much of a caller's value an error quotes: a 10,000-character name must not come back
#: whole in the message and the trailers (clients refuse trailers over 8 KiB).
MAX_QUOTED_CHARS = 100
#: How much of a description an error message repeats (descriptions quote values themselves).
MAX_DESCRIPTION_CHARS = 400
#: How many bad fields an error names, in how many characters; the rest are counted.
MAX_NAMED_VIOLATIONS = 20
MAX_LISTING_CHARS = 1_500


@dataclass(frozen=True)
class FieldViolation:
    """One bad input field: which field (a path such as `features.balance`) and what is wrong."""

    field: str
    description: str


def clipped(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """Text cut to `limit` characters, saying how long it was: `abc... (10,000 chars)`."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} chars)"


def quoted(value: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """A value from the request as an error quotes it: its repr, of at most `limit` of its
    characters, then its length when it was longer."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value):,} chars)"


def listing(violations: Sequence[FieldViolation], separator: str = ": ") -> str:
    """Violations as a message names them: at most MAX_NAMED_VIOLATIONS (and MAX_LISTING_CHARS),
    each field and description clipped, then how many more (`...; and 9,980 more`)."""
    named: list[str] = []
    length = 0
    for v in violations[:MAX_NAMED_VIOLATIONS]:
        text = f"{clipped(v.field)}{separator}{clipped(v.description, MAX_DESCRIPTION_CHARS)}"
        if named and length + len(text) > MAX_LISTING_CHARS:
            break
        named.append(text)
        length += len(text) + 2
    rest = len(violations) - len(named)
    return "; ".join(named) + (f"; and {rest:,} more" if rest > 0 else "")


class RowcastError(Exception):
    """Base of every rowcast domain error."""

    reason = "ROWCAST_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def located(self, where: str) -> Self:
        """The same error (class, reason, details) with its message prefixed by where it
        happened (`stream[4]: model 'x' is not registered`)."""
        if not where:
            return self
        clone = copy.copy(self)
        clone.message = f"{where}: {self.message}"
        clone.args = (clone.message,)
        return clone


class InvalidArgument(RowcastError):
    """The caller's input is malformed; `violations` names each bad field."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, message: str, violations: list[FieldViolation] | None = None) -> None:
        super().__init__(message)
        self.violations = violations or []

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        """One bad field; the message names it."""
        violation = FieldViolation(field, description)
        return cls(listing([violation]), [violation])

    def prefixed(self, prefix: str) -> InvalidArgument:
        """The same error with every field path prefixed (e.g. `inputs[3].`); without field
        paths, the message names the place (`inputs[3]: ...`)."""
        if not prefix:
            return self
        if not self.violations:
            return InvalidArgument(f"{prefix.rstrip('.')}: {self.message}")
        violations = [FieldViolation(prefix + v.field, v.description) for v in self.violations]
        return InvalidArgument(listing(violations), violations)


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
