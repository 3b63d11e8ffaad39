"""The one place every call is authenticated and checked against the policy table.

A call proves who it is by a bearer token (`authorization: Bearer <token>` metadata) or, when
the server accepts client certificates (mTLS), by a certificate signed by the rowcast CA whose
subject names the identity (CN) and its roles (OU). Missing or bad credentials end the call
UNAUTHENTICATED; a role the policy does not allow, PERMISSION_DENIED naming the roles needed.
The identity is then the call's (security/identity.py) for the servicer to record as "who".
Health checks and reflection are public. grpc's Python API has no policy engine: this
interceptor wraps each method's handler once (telemetry/interceptors.py) and runs the check in
the call's own task, before the servicer.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from rowcast.errors import PermissionDenied, RowcastError, Unauthenticated
from rowcast.grpc_errors import abort
from rowcast.security.certs import identity_fields
from rowcast.security.identity import ROLE_NAMES, Identity, Role, set_identity
from rowcast.security.policy import allowed_roles, describe, is_public
from rowcast.security.tokens import TokenVerifier
from rowcast.telemetry.interceptors import Handler, PerMethodInterceptor

Context = grpc.aio.ServicerContext[Any, Any]
_BEARER = "bearer "


class CertificateIdentities:
    """Identities from verified client certificates (gRPC has checked the chain to the CA)."""

    def __init__(self) -> None:
        self._known: dict[bytes, Identity] = {}

    def of(self, context: Context) -> Identity | None:
        certs = list(context.auth_context().get("x509_pem_cert") or ())
        if not certs:
            return None
        pem = certs[0]
        known = self._known.get(pem)
        if known is None:
            name, units = identity_fields(pem)
            if not name:
                raise Unauthenticated("the client certificate names no identity (CN)")
            roles = frozenset(Role(u) for u in units if u in ROLE_NAMES)
            known = Identity(name=name, roles=roles, via="certificate")
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[pem] = known
        return known


class Authenticator:
    """Who a call is: its bearer token, else its client certificate."""

    def __init__(self, tokens: TokenVerifier, certificates: CertificateIdentities | None) -> None:
        self._tokens = tokens
        self._certificates = certificates

    def identify(self, context: Context) -> Identity:
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                text = value.decode() if isinstance(value, bytes) else value
                if not text[: len(_BEARER)].lower() == _BEARER:
                    raise Unauthenticated("authorization metadata must be 'Bearer <token>'")
                return self._tokens.verify(text[len(_BEARER) :].strip())
        if self._certificates is not None:
            identity = self._certificates.of(context)
            if identity is not None:
                return identity
        raise Unauthenticated(
            "no credentials: send 'authorization: Bearer <token>' metadata"
            + (" or a client certificate" if self._certificates is not None else "")
            + " (rowcast auth issue makes a token)"
        )


class AuthInterceptor(PerMethodInterceptor):
    """Authenticates and authorizes every call but health checks and reflection."""

    def __init__(self, authenticator: Authenticator) -> None:
        super().__init__()
        self._authenticator = authenticator

    def wrap(self, handler: Handler, method: str) -> Handler:
        if is_public(method):
            return handler
        check = _checker(self._authenticator, method, allowed_roles(method))
        if handler.request_streaming and handler.response_streaming:
            behavior, factory = handler.stream_stream, grpc.stream_stream_rpc_method_handler
        elif handler.request_streaming:
            behavior, factory = handler.stream_unary, grpc.stream_unary_rpc_method_handler
        elif handler.response_streaming:
            behavior, factory = handler.unary_stream, grpc.unary_stream_rpc_method_handler
        else:
            behavior, factory = handler.unary_unary, grpc.unary_unary_rpc_method_handler
        wrapped: Any
        if inspect.isasyncgenfunction(behavior):
            wrapped = _guarded_generator(behavior, check, handler.request_streaming)
        elif inspect.iscoroutinefunction(behavior):
            wrapped = _guarded_coroutine(behavior, check)
        else:
            raise TypeError(f"{method}: rowcast serves only async handlers")
        return factory(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


Check = Callable[[Context], Identity]


def _checker(authenticator: Authenticator, method: str, roles: frozenset[Role]) -> Check:
    def check(context: Context) -> Identity:
        identity = authenticator.identify(context)
        if not roles:
            raise PermissionDenied(f"{method} has no entry in the policy table: refused")
        if identity.roles.isdisjoint(roles):
            held = ", ".join(sorted(r.value for r in identity.roles)) or "none"
            raise PermissionDenied(
                f"{method} needs {describe(roles)}; {identity.name!r} has {held}"
            )
        return identity

    return check


def _guarded_coroutine(behavior: Any, check: Check) -> Any:
    async def guarded(request: Any, context: Context) -> Any:
        try:
            identity = check(context)
        except RowcastError as error:
            await abort(context, error)
        set_identity(identity)
        return await behavior(request, context)

    return guarded


def _guarded_generator(behavior: Any, check: Check, request_streaming: bool) -> Any:
    """A streaming call is checked when it starts, and again before each message it receives
    and each it sends (a cache hit: ~1 us), so that a token revoked or expired while a
    long-lived stream is open (the prediction servers' StreamDecisions, a StreamPredict, a
    WatchOperation) ends it UNAUTHENTICATED at its next message, before that message is acted
    on, instead of being honoured until the stream happens to reconnect."""

    async def rechecked(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
        async for message in requests:
            check(context)  # a RowcastError here surfaces in the behaviour's loop
            yield message

    async def guarded(request: Any, context: Context) -> AsyncIterator[Any]:
        try:
            identity = check(context)
        except RowcastError as error:
            await abort(context, error)
        set_identity(identity)
        if request_streaming:
            request = rechecked(request, context)
        async for response in behavior(request, context):
            try:
                check(context)
            except RowcastError as error:
                await abort(context, error)
            yield response

    return guarded
