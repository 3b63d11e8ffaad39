"""Every domain error maps to its gRPC status, with ErrorInfo and BadRequest details, and the
client maps each status back to its typed error, through a real in-process server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio

from rowcast import errors
from rowcast.grpc_errors import handles_errors, status_code_for
from rowcast.v1 import model_service_pb2 as model_pb
from rowcast.v1 import model_service_pb2_grpc as model_grpc
from rowcast_client import AsyncRowcastClient, Targets
from rowcast_client import errors as client_errors


def all_subclasses(cls: type[errors.RowcastError]) -> list[type[errors.RowcastError]]:
    out: list[type[errors.RowcastError]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(all_subclasses(sub))
    return out


DOMAIN_ERRORS = all_subclasses(errors.RowcastError)

EXPECTED = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.ModelNotFound: grpc.StatusCode.NOT_FOUND,
    errors.VersionNotFound: grpc.StatusCode.NOT_FOUND,
    errors.DecisionNotFound: grpc.StatusCode.NOT_FOUND,
    errors.RowNotFound: grpc.StatusCode.NOT_FOUND,
    errors.NoActiveVersion: grpc.StatusCode.FAILED_PRECONDITION,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.VersionNotReady: grpc.StatusCode.FAILED_PRECONDITION,
    errors.VerificationFailed: grpc.StatusCode.FAILED_PRECONDITION,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.DecisionConflict: grpc.StatusCode.ALREADY_EXISTS,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.StoreRejected: grpc.StatusCode.INTERNAL,
    errors.Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def test_every_domain_error_has_an_expected_status() -> None:
    """A new error class must be added here (and mapped) before it can ship."""
    assert set(DOMAIN_ERRORS) == set(EXPECTED)
    for cls, code in EXPECTED.items():
        assert status_code_for(cls("x")) == code, cls


def test_reasons_are_unique() -> None:
    """ErrorInfo reasons identify an error within the rowcast.dev domain."""
    reasons = [cls.reason for cls in DOMAIN_ERRORS]
    assert len(reasons) == len(set(reasons))


class Raiser(model_grpc.ModelServiceServicer):
    """A servicer whose GetModel raises the domain error named by the request."""

    @handles_errors
    async def GetModel(self, request: model_pb.GetModelRequest, context: object) -> object:
        cls = next(c for c in DOMAIN_ERRORS if c.__name__ == request.model)
        if cls is errors.InvalidArgument:
            raise errors.InvalidArgument.field("features.balance", "must be a number")
        raise cls(f"raised {request.model}")


@pytest_asyncio.fixture(loop_scope="session")
async def client() -> AsyncIterator[AsyncRowcastClient]:
    server = grpc.aio.server()
    # The generated stubs declare every RPC abstract; Raiser implements GetModel only, and the
    # runtime base class answers the others UNIMPLEMENTED.
    model_grpc.add_ModelServiceServicer_to_server(Raiser(), server)  # type: ignore[abstract]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with AsyncRowcastClient(Targets(model=f"127.0.0.1:{port}")) as c:
        yield c
    await server.stop(0)


@pytest.mark.parametrize("cls", DOMAIN_ERRORS, ids=lambda c: c.__name__)
async def test_client_gets_typed_error_for_every_status(
    client: AsyncRowcastClient, cls: type[errors.RowcastError]
) -> None:
    """Each domain error reaches the client as its status code, reason and typed exception."""
    with pytest.raises(client_errors.RowcastClientError) as caught:
        await client.get_model(cls.__name__)
    err = caught.value
    assert err.code == EXPECTED[cls]
    assert err.reason == cls.reason
    expected_type = client_errors.ERROR_BY_CODE.get(EXPECTED[cls], client_errors.RowcastClientError)
    assert type(err) is expected_type
    if cls is errors.InvalidArgument:
        assert [(v.field, v.description) for v in err.violations] == [
            ("features.balance", "must be a number")
        ]
