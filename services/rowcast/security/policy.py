"""The one table of who may call what: every RPC of the three services and the roles allowed
to call it. The auth interceptor (security/interceptor.py) enforces it; a method missing from
it is refused (fail closed), and tests/unit/test_policy.py checks every role against every RPC.

Augment is one RPC for two duties: the table lets reviewers and approvers in, and the
AuditService then requires `reviewer` to propose and `approver` to approve or reject (never
the identity that proposed)."""

from __future__ import annotations

from collections.abc import Mapping

from rowcast.security.identity import Role

_P = "/rowcast.v1.PredictionService/"
_A = "/rowcast.v1.AuditService/"
_M = "/rowcast.v1.ModelService/"

_READ = frozenset({Role.READER, Role.ADMIN})
_ADMIN = frozenset({Role.ADMIN})

POLICY: Mapping[str, frozenset[Role]] = {
    # Serving.
    _P + "Predict": frozenset({Role.PREDICTOR}),
    _P + "PredictBatch": frozenset({Role.PREDICTOR}),
    _P + "StreamPredict": frozenset({Role.PREDICTOR}),
    # The audit: written only by prediction servers, read by auditors.
    _A + "RecordDecisions": frozenset({Role.RECORDER}),
    _A + "StreamDecisions": frozenset({Role.RECORDER}),
    # Reviewers and approvers read the decision they review.
    _A + "GetDecision": frozenset({Role.AUDITOR, Role.REVIEWER, Role.APPROVER}),
    _A + "ListDecisions": frozenset({Role.AUDITOR}),
    _A + "CountDecisions": frozenset({Role.AUDITOR}),
    _A + "Augment": frozenset({Role.REVIEWER, Role.APPROVER}),
    # The registry: read by readers (and admins), changed by admins.
    _M + "ListModels": _READ,
    _M + "GetModel": _READ,
    _M + "ListVersions": _READ,
    _M + "GetVersion": _READ,
    _M + "GetOperation": _READ,
    _M + "WatchOperation": _READ,
    _M + "ListActivations": _READ,
    _M + "DiffVersions": _READ,
    _M + "RegisterModel": _ADMIN,
    _M + "DeleteModel": _ADMIN,
    _M + "CreateVersion": _ADMIN,
    _M + "MaterializeVersion": _ADMIN,
    _M + "CancelOperation": _ADMIN,
    _M + "ActivateVersion": _ADMIN,
    _M + "RollbackModel": _ADMIN,
    _M + "RetireVersion": _ADMIN,
    _M + "SetAlias": _ADMIN,
    _M + "DeleteAlias": _ADMIN,
}

#: Services any caller may use without credentials: health checks (load balancers, probes)
#: and server reflection (it describes the public contracts, nothing stored).
PUBLIC_SERVICES: frozenset[str] = frozenset(
    {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
)


def is_public(method: str) -> bool:
    """Whether `/package.Service/Method` needs no credentials."""
    return method.lstrip("/").split("/", 1)[0] in PUBLIC_SERVICES


def allowed_roles(method: str) -> frozenset[Role]:
    """The roles that may call `method`; empty for a method the table does not know."""
    return POLICY.get(method, frozenset())


def describe(roles: frozenset[Role]) -> str:
    """`role admin` or `one of the roles admin, reader`, for PERMISSION_DENIED messages."""
    names = sorted(r.value for r in roles)
    return f"role {names[0]}" if len(names) == 1 else "one of the roles " + ", ".join(names)
