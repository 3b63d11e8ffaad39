"""The role policy, generated from its one table: every role against every RPC of the three
services, through a real grpc.aio server with the real auth interceptor. A call the table
allows gets past the gate (here to a servicer that answers UNIMPLEMENTED: "reached"); any other
gets PERMISSION_DENIED naming the roles it needs. A new RPC without an entry fails here."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass

from rowcast.errors import PermissionDenied
from rowcast.security.identity import Role
from rowcast.security.interceptor import Authenticator, AuthInterceptor, _checker
from rowcast.security.policy import POLICY, allowed_roles, is_public
from rowcast.security.tokens import TokenVerifier, issue_token, new_signing_key
from rowcast.v1 import audit_service_pb2, model_service_pb2, prediction_service_pb2

SERVICES: list[ServiceDescriptor] = [
    prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"],
    audit_service_pb2.DESCRIPTOR.services_by_name["AuditService"],
    model_service_pb2.DESCRIPTOR.services_by_name["ModelService"],
]
METHODS: list[MethodDescriptor] = [m for s in SERVICES for m in s.methods]


def path(m: MethodDescriptor) -> str:
    return f"/{m.containing_service.full_name}/{m.name}"


def test_every_rpc_has_an_entry_and_every_entry_an_rpc() -> None:
    """The table and the contracts name the same RPCs: adding an RPC without deciding who may
    call it fails here (and the interceptor would refuse it to everyone)."""
    assert {path(m) for m in METHODS} == set(POLICY)
    assert all(POLICY[p] for p in POLICY), "an entry with no role is a dead RPC"


def test_a_method_missing_from_the_table_is_refused_to_everyone() -> None:
    """Fail closed: an unknown method gets no role, so every identity is denied."""
    private, public = new_signing_key()
    token = issue_token(private, "root", frozenset(Role), 60).token
    check = _checker(Authenticator(TokenVerifier(public), None), "/x.Y/Z", allowed_roles("/x.Y/Z"))

    class Ctx:
        def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
            return (("authorization", f"Bearer {token}"),)

    with pytest.raises(PermissionDenied, match="no entry"):
        check(Ctx())  # type: ignore[arg-type]


def test_health_and_reflection_are_public_and_nothing_else() -> None:
    assert is_public("/grpc.health.v1.Health/Check")
    assert is_public("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    assert not any(is_public(path(m)) for m in METHODS)


def _reached_handler(m: MethodDescriptor) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the method's kind that answers UNIMPLEMENTED ('reached'): behind the gate."""
    req: Any = GetMessageClass(m.input_type)
    resp: Any = GetMessageClass(m.output_type)

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "reached")

    async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "reached")
        yield resp()

    kwargs: dict[str, Any] = {
        "request_deserializer": req.FromString,
        "response_serializer": resp.SerializeToString,
    }
    if m.client_streaming and m.server_streaming:
        return grpc.stream_stream_rpc_method_handler(stream, **kwargs)
    if m.client_streaming:
        return grpc.stream_unary_rpc_method_handler(unary, **kwargs)
    if m.server_streaming:
        return grpc.unary_stream_rpc_method_handler(stream, **kwargs)
    return grpc.unary_unary_rpc_method_handler(unary, **kwargs)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gate() -> AsyncIterator[tuple[grpc.aio.Channel, dict[Role, str]]]:
    private, public = new_signing_key()
    tokens = {r: issue_token(private, f"only-{r.value}", frozenset({r}), 600).token for r in Role}
    server = grpc.aio.server(
        interceptors=[AuthInterceptor(Authenticator(TokenVerifier(public), None))]
    )
    for service in SERVICES:
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    service.full_name, {m.name: _reached_handler(m) for m in service.methods}
                ),
            )
        )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel, tokens
    await server.stop(None)


def _matrix() -> Iterator[Any]:
    for m, role in itertools.product(METHODS, Role):
        allowed = role in POLICY[path(m)]
        yield pytest.param(
            m, role, allowed, id=f"{m.name}-{role.value}-{'allow' if allowed else 'deny'}"
        )


async def _call(
    channel: grpc.aio.Channel, m: MethodDescriptor, token: str | None
) -> grpc.aio.AioRpcError:
    req: Any = GetMessageClass(m.input_type)
    resp: Any = GetMessageClass(m.output_type)
    metadata = () if token is None else (("authorization", f"Bearer {token}"),)
    kw: dict[str, Any] = {
        "request_serializer": req.SerializeToString,
        "response_deserializer": resp.FromString,
    }
    p = path(m)
    # Request streams send nothing (half-closed at once): grpc.aio's client can report a status
    # the server sent while the client was still writing as INTERNAL (grpc/grpc#36066).
    none: Any = iter(())
    ch: Any = channel
    try:
        if m.client_streaming and m.server_streaming:
            call = ch.stream_stream(p, **kw)(none, metadata=metadata, timeout=5)
            async for _ in call:
                pass
        elif m.client_streaming:
            await ch.stream_unary(p, **kw)(none, metadata=metadata, timeout=5)
        elif m.server_streaming:
            async for _ in ch.unary_stream(p, **kw)(req(), metadata=metadata, timeout=5):
                pass
        else:
            await ch.unary_unary(p, **kw)(req(), metadata=metadata, timeout=5)
    except grpc.aio.AioRpcError as exc:
        return exc
    raise AssertionError(f"{p} answered OK from a servicer that only aborts")


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("method", "role", "allowed"), list(_matrix()))
async def test_role_against_rpc(
    gate: tuple[grpc.aio.Channel, dict[Role, str]],
    method: MethodDescriptor,
    role: Role,
    allowed: bool,
) -> None:
    """Each role reaches exactly the RPCs its table entry lists; a denial names what is needed."""
    channel, tokens = gate
    error = await _call(channel, method, tokens[role])
    if allowed:
        assert error.code() == grpc.StatusCode.UNIMPLEMENTED, error.details()
    else:
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()
        needed = sorted(r.value for r in POLICY[path(method)])
        assert all(n in (error.details() or "") for n in needed), error.details()


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
async def test_no_credentials_is_unauthenticated(
    gate: tuple[grpc.aio.Channel, dict[Role, str]], method: MethodDescriptor
) -> None:
    channel, _ = gate
    error = await _call(channel, method, None)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error.details()


def _reachable(role: Role) -> set[str]:
    return {p.rsplit("/", 1)[1] for p, roles in POLICY.items() if role in roles}


def test_the_table_grants_what_each_role_is_for() -> None:
    """Written out independently of the table: what each role may call (issue #10)."""
    reads = {
        "ListModels", "GetModel", "ListVersions", "GetVersion", "GetOperation",
        "WatchOperation", "ListActivations", "DiffVersions",
    }  # fmt: skip
    changes = {
        "RegisterModel", "DeleteModel", "CreateVersion", "MaterializeVersion", "CancelOperation",
        "ActivateVersion", "RollbackModel", "RetireVersion", "SetAlias", "DeleteAlias",
    }  # fmt: skip
    assert _reachable(Role.PREDICTOR) == {"Predict", "PredictBatch", "StreamPredict"}
    assert _reachable(Role.RECORDER) == {"RecordDecisions", "StreamDecisions"}
    assert _reachable(Role.AUDITOR) == {"GetDecision", "ListDecisions", "CountDecisions"}
    assert _reachable(Role.REVIEWER) == {"GetDecision", "Augment"}
    assert _reachable(Role.APPROVER) == {"GetDecision", "Augment"}
    assert _reachable(Role.READER) == reads
    assert _reachable(Role.ADMIN) == reads | changes
