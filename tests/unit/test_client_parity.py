"""The sync and async clients offer the same methods, one per RPC, with the same parameters."""

from __future__ import annotations

import inspect
import re

import pytest

from rowcast.v1 import audit_service_pb2, model_service_pb2, prediction_service_pb2
from rowcast_client import AsyncRowcastClient, RowcastClient

# The prediction servers' own calls to the AuditService; not for client code.
SERVER_ONLY_RPCS = {"RecordDecisions", "StreamDecisions"}


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def snake_case(rpc: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", rpc).lower()


def client_rpcs() -> dict[str, str]:
    """Method name -> full RPC name, for every RPC a client calls."""
    out: dict[str, str] = {}
    for module in (prediction_service_pb2, audit_service_pb2, model_service_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                if method.name not in SERVER_ONLY_RPCS:
                    out[snake_case(method.name)] = method.full_name
    return out


ASYNC = public_methods(AsyncRowcastClient)
SYNC = public_methods(RowcastClient)


def test_the_sync_and_async_clients_have_the_same_public_methods() -> None:
    """A method added to one client only (as stream_predict once was) fails here."""
    assert sorted(SYNC) == sorted(ASYNC)


def test_there_is_one_method_per_rpc_named_after_it() -> None:
    """Each client RPC has exactly one method, its name in snake_case; nothing else is public
    but close (no second spelling such as `activate` beside `activate_version`)."""
    assert sorted(ASYNC) == sorted([*client_rpcs(), "close"])


def test_the_constructors_take_the_same_parameters() -> None:
    """Both clients are built the same way."""
    sync = inspect.signature(RowcastClient.__init__).parameters
    aio = inspect.signature(AsyncRowcastClient.__init__).parameters
    assert list(sync.values()) == list(aio.values())


@pytest.mark.parametrize("name", sorted(ASYNC))
def test_a_method_takes_the_same_parameters_and_returns_the_same_type_in_both(name: str) -> None:
    """Same names, kinds, defaults and annotations; the same result (an Iterator where the async
    client has an AsyncIterator)."""
    sync, aio = SYNC[name], ASYNC[name]
    assert list(sync.parameters.values()) == list(aio.parameters.values())
    assert str(sync.return_annotation) == str(aio.return_annotation).replace(
        "AsyncIterator[", "Iterator["
    )
