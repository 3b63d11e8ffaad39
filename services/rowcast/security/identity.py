"""The authenticated identity of the call being served, and how a recorded "who" is derived
from it (never from what the caller typed, unless the server runs with --insecure)."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from enum import StrEnum

from rowcast.errors import PermissionDenied


class Role(StrEnum):
    """The roles of the policy table (security/policy.py)."""

    PREDICTOR = "predictor"
    READER = "reader"
    AUDITOR = "auditor"
    REVIEWER = "reviewer"
    APPROVER = "approver"
    ADMIN = "admin"
    RECORDER = "recorder"


ROLE_NAMES: tuple[str, ...] = tuple(r.value for r in Role)


@dataclass(frozen=True)
class Identity:
    """Who is calling: a name, its roles, and how it proved them (`token` or `certificate`)."""

    name: str
    roles: frozenset[Role]
    via: str = "token"
    #: The token's id (jti) when authenticated by a token.
    token_id: str = ""

    def has(self, role: Role) -> bool:
        return role in self.roles


_CURRENT: contextvars.ContextVar[Identity | None] = contextvars.ContextVar(
    "rowcast_identity", default=None
)


def current_identity() -> Identity | None:
    """The identity of the call being served; None when the server runs without
    authentication (--insecure)."""
    return _CURRENT.get()


def set_identity(identity: Identity | None) -> contextvars.Token[Identity | None]:
    return _CURRENT.set(identity)


def reset_identity(token: contextvars.Token[Identity | None]) -> None:
    _CURRENT.reset(token)


def recorded_name(claimed: str, field: str) -> str:
    """The name to record as who did something: the authenticated name, which a claimed one
    (the request's `actor`/`creator`) must equal when given. Without authentication the
    claimed name is all there is (empty: the caller did not say)."""
    identity = current_identity()
    claimed = claimed.strip()
    if identity is None:
        return claimed
    if claimed and claimed != identity.name:
        raise PermissionDenied(
            f"{field}: {claimed[:100]!r} is not the authenticated caller {identity.name!r} "
            f"(leave {field} empty: the caller's identity is recorded)"
        )
    return identity.name
