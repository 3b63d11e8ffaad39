"""Every lower-level error (thriftpy2, both HBase IDLs, happybase, kazoo, sockets) maps to its
intended domain error in one place (store/client.py), a local file error is never "HBase
unavailable", and store calls end within their deadline against a gateway that never answers.

The enumeration is the httpx `test_httpcore_all_exceptions_mapped` idea: a library upgrade
that adds an exception class fails here until the class is given its intended mapping."""

from __future__ import annotations

import builtins
import errno
import importlib
import inspect
import pkgutil
import socket
import time
from collections.abc import Iterator
from types import ModuleType

import happybase
import kazoo.exceptions
import kazoo.handlers.threading
import kazoo.retry
import pytest
import thriftpy2.protocol
import thriftpy2.thrift
import thriftpy2.transport
from kazoo.exceptions import KazooException
from thriftpy2.thrift import TDecodeException

from rowcast.config import HBaseSettings
from rowcast.errors import AlreadyExists, RowcastError, StoreRejected, StoreUnavailable
from rowcast.store.admin import Family, TableAdmin
from rowcast.store.client import DOMAIN_BY_LOWER, HBaseClient, map_store_error
from rowcast.store.idl import Hbase_thrift, hbase2

Expected = type[RowcastError] | None


def exception_classes(module: ModuleType) -> set[type[BaseException]]:
    return {v for v in vars(module).values() if inspect.isclass(v) and issubclass(v, BaseException)}


def package_exceptions(package: ModuleType) -> set[type[BaseException]]:
    """Exception classes defined in a package and all its modules."""
    found = exception_classes(package)
    for info in pkgutil.walk_packages(getattr(package, "__path__", []), package.__name__ + "."):
        found |= exception_classes(importlib.import_module(info.name))
    root = package.__name__.split(".")[0]
    return {c for c in found if c.__module__.split(".")[0] == root}


def lower_level_exceptions() -> set[type[BaseException]]:
    """Every exception class a store call can meet below the domain layer."""
    found = package_exceptions(thriftpy2.transport) | package_exceptions(thriftpy2.protocol)
    found |= {c for c in exception_classes(thriftpy2.thrift) if c.__module__.startswith("thrift")}
    found |= exception_classes(Hbase_thrift) | exception_classes(hbase2)
    found |= package_exceptions(happybase)
    found |= package_exceptions(kazoo.exceptions) | exception_classes(kazoo.handlers.threading)
    found |= {c for c in exception_classes(kazoo.retry) if issubclass(c, KazooException)}
    found |= {c for c in exception_classes(builtins) if issubclass(c, OSError)}
    found |= {c for c in exception_classes(socket) if issubclass(c, OSError)}
    return found


ZOOKEEPER_UNREACHABLE = {
    kazoo.exceptions.ConnectionLoss,
    kazoo.exceptions.ConnectionDropped,
    kazoo.exceptions.SessionExpiredError,
    kazoo.exceptions.ConnectionClosedError,
    kazoo.exceptions.SessionMovedError,
    kazoo.exceptions.UnknownSessionError,
    kazoo.exceptions.OperationTimeoutError,
    kazoo.exceptions.RequestTimeoutError,
    kazoo.exceptions.ThrottledOpError,
    kazoo.exceptions.SystemZookeeperError,
    kazoo.exceptions.ZookeeperStoppedError,
    kazoo.handlers.threading.KazooTimeoutError,
    kazoo.retry.RetryFailedError,
    kazoo.retry.InterruptedError,
}

#: Class -> the domain error it must become (None: not a store error, raised as it is).
EXPECTED: dict[type[BaseException], Expected] = {
    # Thrift: no (whole) answer from the gateway.
    thriftpy2.thrift.TException: StoreUnavailable,
    thriftpy2.thrift.TApplicationException: StoreUnavailable,
    thriftpy2.thrift.TDecodeException: StoreUnavailable,
    thriftpy2.transport.TTransportException: StoreUnavailable,
    thriftpy2.protocol.exc.TProtocolException: StoreUnavailable,
    thriftpy2.protocol.cybin.ProtocolError: StoreUnavailable,
    # HBase's answers: an IOException can pass; a malformed request is a rowcast bug.
    Hbase_thrift.IOError: StoreUnavailable,
    Hbase_thrift.IllegalArgument: StoreRejected,
    Hbase_thrift.AlreadyExists: AlreadyExists,
    hbase2.TIOError: StoreUnavailable,
    hbase2.TIllegalArgument: StoreRejected,
    # happybase's own pool (rowcast does not use it: store/client.py says why).
    happybase.NoConnectionsAvailable: None,
    # Sockets: the network's errors only.
    TimeoutError: StoreUnavailable,
    ConnectionError: StoreUnavailable,
    BrokenPipeError: StoreUnavailable,
    ConnectionAbortedError: StoreUnavailable,
    ConnectionRefusedError: StoreUnavailable,
    ConnectionResetError: StoreUnavailable,
    socket.gaierror: StoreUnavailable,
    socket.herror: StoreUnavailable,
    # Local errors (a model file, a spool file): never "HBase unavailable".
    OSError: None,
    BlockingIOError: None,
    ChildProcessError: None,
    FileExistsError: None,
    FileNotFoundError: None,
    InterruptedError: None,
    IsADirectoryError: None,
    NotADirectoryError: None,
    PermissionError: None,
    ProcessLookupError: None,
    # ZooKeeper: out of reach or a session lost; any other answer is unexpected (a bug).
    **{cls: StoreUnavailable for cls in ZOOKEEPER_UNREACHABLE},
    **{
        cls: StoreRejected
        for cls in package_exceptions(kazoo.exceptions)
        if cls not in ZOOKEEPER_UNREACHABLE
    },
}


def instance(cls: type[BaseException]) -> BaseException:
    if cls is TDecodeException:
        return TDecodeException("Row", 1, "value", b"x", 11)
    if issubclass(cls, OSError) and cls is not OSError:
        return cls(errno.EIO, "boom")
    try:
        return cls("boom")
    except TypeError:
        return cls()


def test_every_lower_level_exception_class_has_an_intended_mapping() -> None:
    """A new exception class in thriftpy2, the HBase IDLs, happybase, kazoo or the socket
    layer must be given its mapping here (and in store/client.py) before it can ship."""
    unlisted = lower_level_exceptions() - set(EXPECTED)
    assert not unlisted, f"lower-level exceptions without an intended mapping: {unlisted}"


@pytest.mark.parametrize("cls", sorted(EXPECTED, key=repr), ids=repr)
def test_each_lower_level_exception_maps_to_its_domain_error(cls: type[BaseException]) -> None:
    """HBase unreachable or silent is StoreUnavailable, a request HBase refuses is
    StoreRejected (INTERNAL), a local error is not mapped at all."""
    mapped = map_store_error(instance(cls))
    want = EXPECTED[cls]
    assert (type(mapped) if mapped is not None else None) is want
    if isinstance(mapped, StoreUnavailable):
        assert mapped.retryable


def test_no_entry_of_the_map_is_shadowed_by_an_earlier_one() -> None:
    """The first isinstance match wins, so a class listed after one of its bases is dead."""
    classes = [cls for cls, _ in DOMAIN_BY_LOWER]
    for i, later in enumerate(classes):
        shadowing = [c for c in classes[:i] if issubclass(later, c)]
        assert not shadowing, f"{later} is caught by {shadowing} first"


@pytest.mark.parametrize(
    "code", [errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.ENOTCONN]
)
def test_a_plain_oserror_of_the_network_is_unavailable(code: int) -> None:
    """A route lost while connected raises a plain OSError: that is HBase unreachable."""
    assert isinstance(map_store_error(OSError(code, "network")), StoreUnavailable)


@pytest.mark.parametrize(
    "error",
    [
        FileNotFoundError(errno.ENOENT, "No such file", "/var/rowcast/model.txt"),
        PermissionError(errno.EACCES, "Permission denied", "/var/rowcast/spool"),
        OSError(errno.ENOSPC, "No space left on device"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_local_file_error_is_not_a_store_error(error: OSError) -> None:
    """Reading a model or spool file fails locally: not mapped, so never UNAVAILABLE."""
    assert map_store_error(error) is None


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts connections and never answers (like a SIGSTOPped gateway)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture
def refused() -> int:
    """A port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_on(port: int) -> HBaseSettings:
    return HBaseSettings(thrift_port=port, thrift2_port=port, timeout_s=1.0, pool_size=2)


@pytest.mark.parametrize(
    "error",
    [FileNotFoundError(errno.ENOENT, "gone", "model.txt"), PermissionError(errno.EACCES, "no")],
    ids=lambda e: type(e).__name__,
)
async def test_a_local_file_error_inside_a_store_call_is_raised_as_itself(
    black_hole: int, error: OSError
) -> None:
    """A store call whose work fails on a local file raises that error, not StoreUnavailable,
    and is not retried."""
    client = HBaseClient(settings_on(black_hole))
    calls: list[int] = []

    def work(conn: happybase.Connection) -> None:
        calls.append(1)
        raise error

    try:
        with pytest.raises(type(error)):
            client.call(work)
        with pytest.raises(type(error)):
            await client.run(work, timeout_s=2.0)
    finally:
        client.close()
    assert len(calls) == 2


async def test_hbase_refusing_a_request_is_internal_and_not_retried(black_hole: int) -> None:
    """IllegalArgument from HBase is StoreRejected at once; an IOError is retried once on a
    fresh connection, then StoreUnavailable."""
    client = HBaseClient(settings_on(black_hole))
    calls: list[str] = []

    def refused_work(conn: happybase.Connection) -> None:
        calls.append("illegal")
        raise Hbase_thrift.IllegalArgument(message="bad column")

    def failing_work(conn: happybase.Connection) -> None:
        calls.append("io")
        raise Hbase_thrift.IOError(message="region not online")

    try:
        with pytest.raises(StoreRejected, match="bad column"):
            await client.run(refused_work, timeout_s=2.0)
        with pytest.raises(StoreUnavailable, match="region not online"):
            await client.run(failing_work, timeout_s=2.0)
    finally:
        client.close()
    assert calls == ["illegal", "io", "io"]


async def test_a_silent_gateway_is_unavailable_within_the_deadline(black_hole: int) -> None:
    """A call to a gateway that never answers fails, not retryable, by its deadline."""
    client = HBaseClient(settings_on(black_hole))
    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await client.run(lambda conn: conn.tables(), timeout_s=0.3)
    finally:
        client.close()
    assert time.monotonic() - started < 0.5
    assert not caught.value.retryable


async def test_a_spent_deadline_starts_no_call(black_hole: int) -> None:
    """With no time left, nothing is sent (a write the caller no longer waits for)."""
    client = HBaseClient(settings_on(black_hole))
    calls: list[int] = []
    try:
        with pytest.raises(StoreUnavailable):
            await client.run(lambda conn: calls.append(1), timeout_s=0.0)
    finally:
        client.close()
    assert calls == []


@pytest.mark.parametrize("operation", ["create", "drop", "exists"])
def test_a_table_change_against_a_silent_gateway_ends_by_its_deadline(
    black_hole: int, operation: str
) -> None:
    """Creating or dropping a table on a gateway that never answers fails StoreUnavailable
    (not retryable) within its deadline: it never hangs."""
    admin = TableAdmin(settings_on(black_hole))
    calls = {
        "create": lambda: admin.create("rowcast:t", [Family("p")], [b"\x08"], timeout_s=0.4),
        "drop": lambda: admin.drop("rowcast:t", timeout_s=0.4),
        "exists": lambda: admin.exists("rowcast:t", timeout_s=0.4),
    }
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        calls[operation]()
    assert time.monotonic() - started < 0.6
    assert not caught.value.retryable


def test_a_table_change_with_the_gateway_down_is_unavailable(refused: int) -> None:
    """A refused connection is StoreUnavailable at once (retryable: the gateway may be back)."""
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        TableAdmin(settings_on(refused)).drop("rowcast:t", timeout_s=5.0)
    assert time.monotonic() - started < 1.0
    assert caught.value.retryable
