"""No single gateway (store/gateways.py): calls spread over several Thrift gateways, a gateway
that fails is marked down and skipped, it rejoins once it answers again, a hung one costs at
most the attempt timeout, and a call that is not idempotent is never replayed once it may have
reached a gateway. The gateways here are real Thrift servers (HBase's own IDLs served by
thriftpy2) on free ports, not HBase; tests/integration/test_gateway_failover.py runs the same
against real HBase gateways."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import REGISTRY
from thriftpy2.protocol import TBinaryProtocolFactory
from thriftpy2.rpc import make_server
from thriftpy2.transport import TBufferedTransportFactory

from rowcast.config import HBaseSettings, Settings
from rowcast.errors import StoreUnavailable
from rowcast.store.client import HBaseClient, check_and_put
from rowcast.store.gateways import GatewaySet
from rowcast.store.idl import Hbase_thrift, hbase2


@dataclass
class Handler:
    """What a fake gateway answers, and what it was asked."""

    name: str
    delay_s: float = 0.0
    calls: list[str] = field(default_factory=list)

    def getTableNames(self) -> list[bytes]:
        self.calls.append("getTableNames")
        time.sleep(self.delay_s)
        return [self.name.encode()]

    def checkAndPut(self, *args: Any) -> bool:
        self.calls.append("checkAndPut")
        time.sleep(self.delay_s)
        return True

    def get(self, table: bytes, tget: Any) -> Any:
        self.calls.append("get")
        value = hbase2.TColumnValue(family=b"p", qualifier=b"o", value=self.name.encode())
        return hbase2.TResult(row=tget.row, columnValues=[value], stale=True)


class FakeGateway:
    """A Thrift server (Thrift1 or Thrift2 IDL) on a port of its own, in a thread."""

    def __init__(self, handler: Handler, port: int = 0, thrift2: bool = False) -> None:
        self.handler = handler
        service = hbase2.THBaseService if thrift2 else Hbase_thrift.Hbase
        self.port = port or free_port()
        self._server = make_server(
            service,
            handler,
            "127.0.0.1",
            self.port,
            proto_factory=TBinaryProtocolFactory(),
            trans_factory=TBufferedTransportFactory(),
            client_timeout=60_000,
        )
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 5.0
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _serve(self) -> None:
        try:
            self._server.serve()
        except Exception:  # its listening socket closed under it: stopped
            return

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def gateways() -> Iterator[list[FakeGateway]]:
    started: list[FakeGateway] = []
    yield started
    for gateway in started:
        gateway.close()


def serve(
    started: list[FakeGateway], name: str, delay_s: float = 0.0, port: int = 0
) -> FakeGateway:
    gateway = FakeGateway(Handler(name, delay_s), port)
    started.append(gateway)
    return gateway


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A gateway that accepts connections and never answers (like a SIGSTOPped one)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def settings(*addresses: str, attempt_s: float = 0.2, retry_s: float = 0.1) -> HBaseSettings:
    return HBaseSettings(
        thrift_gateways=addresses,
        thrift2_gateways=addresses,
        timeout_s=2.0,
        pool_size=2,
        gateway_attempt_timeout_s=attempt_s,
        gateway_retry_s=retry_s,
    )


def up(address: str) -> float | None:
    return REGISTRY.get_sample_value("rowcast_hbase_gateway_up", {"gateway": address})


def tables(conn: Any) -> list[bytes]:
    return list(conn.tables())


def test_calls_are_spread_over_every_healthy_gateway(gateways: list[FakeGateway]) -> None:
    """Twenty calls over two answering gateways reach both of them, about evenly, and each
    call is timed under the gateway that answered it."""
    a, b = serve(gateways, "a"), serve(gateways, "b")
    client = HBaseClient(settings(a.address, b.address))
    try:
        answers = [client.call(tables, op="spread")[0] for _ in range(20)]
    finally:
        client.close()
    assert answers.count(b"a") >= 8
    assert answers.count(b"b") >= 8
    for gateway, name in ((a, b"a"), (b, b"b")):
        timed = REGISTRY.get_sample_value(
            "rowcast_hbase_call_seconds_count", {"operation": "spread", "gateway": gateway.address}
        )
        assert timed == answers.count(name)


def test_a_refusing_gateway_is_marked_down_and_skipped(gateways: list[FakeGateway]) -> None:
    """A gateway that refuses connections costs one attempt, is marked down (gauge 0) and is
    skipped: every call succeeds on the other gateway."""
    dead = f"127.0.0.1:{free_port()}"
    live = serve(gateways, "live")
    client = HBaseClient(settings(dead, live.address, retry_s=30.0))
    try:
        answers = [client.call(tables)[0] for _ in range(10)]
        assert answers == [b"live"] * 10
        assert up(dead) == 0
        assert up(live.address) == 1
        assert [g.address for g in client.gateways.order()][-1] == dead
    finally:
        client.close()


def test_a_down_gateway_rejoins_once_it_answers(gateways: list[FakeGateway]) -> None:
    """A gateway marked down is probed in the background and takes calls again once it
    answers."""
    port = free_port()
    other = serve(gateways, "other")
    client = HBaseClient(settings(f"127.0.0.1:{port}", other.address, retry_s=0.1))
    try:
        client.call(tables)
        client.call(tables)
        assert up(f"127.0.0.1:{port}") == 0
        back = serve(gateways, "back", port=port)
        deadline = time.monotonic() + 5.0
        while up(back.address) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert up(back.address) == 1
        answers = {client.call(tables)[0] for _ in range(6)}
        assert b"back" in answers
    finally:
        client.close()


async def test_a_hung_gateway_costs_at_most_the_attempt_timeout(
    gateways: list[FakeGateway], black_hole: str
) -> None:
    """A point read whose first gateway accepts and never answers moves to the next one after
    its attempt timeout (0.2 s) and succeeds well inside its 2 s deadline; the hung gateway is then
    skipped."""
    live = serve(gateways, "live")
    client = HBaseClient(settings(black_hole, live.address, attempt_s=0.2, retry_s=30.0))
    try:
        assert client.gateways.gateways[0].address == black_hole  # the first turn is the hole's
        started = time.monotonic()
        assert await client.run(tables, timeout_s=2.0, attempt_timeout_s=0.2) == [b"live"]
        assert time.monotonic() - started < 0.2 + 0.3
        assert up(black_hole) == 0
        started = time.monotonic()
        for _ in range(5):
            assert await client.run(tables, timeout_s=2.0, attempt_timeout_s=0.2) == [b"live"]
        assert time.monotonic() - started < 0.5
    finally:
        client.close()


async def test_a_call_ends_by_its_deadline_when_every_gateway_hangs(black_hole: str) -> None:
    """With every gateway hung a call fails (not retryable) by its deadline, never later."""
    client = HBaseClient(settings(black_hole, black_hole.replace("127.0.0.1", "localhost")))
    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await client.run(tables, timeout_s=0.5)
    finally:
        client.close()
    assert time.monotonic() - started < 0.7
    assert not caught.value.retryable


def cas(conn: Any) -> bool:
    return check_and_put(conn, "t", b"row", b"f:c", b"", b"v")


def test_a_non_idempotent_call_is_not_replayed_after_a_read_timeout(
    gateways: list[FakeGateway],
) -> None:
    """A checkAndPut (retry=False) whose gateway received it and then timed out raises
    StoreUnavailable; the other gateway never sees it."""
    slow = serve(gateways, "slow", delay_s=1.0)
    fast = serve(gateways, "fast")
    client = HBaseClient(settings(slow.address, fast.address, attempt_s=0.2, retry_s=30.0))
    try:
        with pytest.raises(StoreUnavailable):
            client.call(cas, retry=False, attempt_timeout_s=0.2)
    finally:
        client.close()
    assert slow.handler.calls == ["checkAndPut"]
    assert fast.handler.calls == []


def test_a_non_idempotent_call_fails_over_when_it_never_reached_a_gateway(
    gateways: list[FakeGateway],
) -> None:
    """A checkAndPut (retry=False) whose first gateway refused the connection goes to the next
    gateway: the request provably never reached the first."""
    fast = serve(gateways, "fast")
    client = HBaseClient(settings(f"127.0.0.1:{free_port()}", fast.address))
    try:
        assert client.call(cas, retry=False) is True
    finally:
        client.close()
    assert fast.handler.calls == ["checkAndPut"]


def test_one_gateway_keeps_the_whole_deadline_for_an_attempt(gateways: list[FakeGateway]) -> None:
    """With a single gateway (standalone HBase) there is nowhere to fail over to: a slow answer
    (0.5 s, past the 0.2 s attempt timeout) still arrives within the call's deadline."""
    slow = serve(gateways, "slow", delay_s=0.5)
    client = HBaseClient(settings(slow.address, attempt_s=0.2))
    try:
        assert client.call(tables, deadline=time.monotonic() + 2.0) == [b"slow"]
    finally:
        client.close()


def test_when_every_gateway_is_slow_a_later_longer_attempt_answers(
    gateways: list[FakeGateway],
) -> None:
    """Two gateways that both answer in 0.35 s, past the 0.2 s attempt timeout (a loaded
    machine): an idempotent call with a 2 s deadline goes round again with doubled attempts
    and succeeds within its deadline."""
    a, b = serve(gateways, "a", delay_s=0.35), serve(gateways, "b", delay_s=0.35)
    client = HBaseClient(settings(a.address, b.address, attempt_s=0.2, retry_s=30.0))
    started = time.monotonic()
    try:
        assert client.call(tables, deadline=started + 2.0)[0] in (b"a", b"b")
    finally:
        client.close()
    assert time.monotonic() - started < 2.0


def test_thrift2_reads_fail_over_and_count_stale_answers(gateways: list[FakeGateway]) -> None:
    """The Thrift2 data client spreads over its gateways like the Thrift1 one, skips one that
    refuses, and a TIMELINE get reports the `stale` flag of its answer."""
    t2 = FakeGateway(Handler("t2"), thrift2=True)
    gateways.append(t2)
    client = HBaseClient(settings(f"127.0.0.1:{free_port()}", t2.address))
    tget = hbase2.TGet(row=b"k", consistency=hbase2.TConsistency.TIMELINE)
    try:
        results = [client.thrift2.call(lambda c: c.get(b"t", tget)) for _ in range(4)]
    finally:
        client.close()
    assert all(r.stale and r.columnValues[0].value == b"t2" for r in results)
    assert t2.handler.calls == ["get"] * 4


def test_the_gateway_order_rotates_and_puts_down_gateways_last() -> None:
    """Healthy gateways take turns at the front; one marked down comes last until it answers."""
    gateways = GatewaySet(["h:1", "h:2", "h:3"], retry_s=1.0)
    firsts = [gateways.order()[0].address for _ in range(6)]
    assert firsts == ["h:1", "h:2", "h:3", "h:1", "h:2", "h:3"]
    two = gateways.gateways[1]
    gateways.failed(two)
    assert all(gateways.order()[-1] is two for _ in range(3))
    gateways.answered(two)
    assert any(gateways.order()[0] is two for _ in range(3))
    gateways.close()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ROWCAST_HBASE_GATEWAYS", "127.0.0.1"),
        ("ROWCAST_HBASE_GATEWAYS", "127.0.0.1:90000"),
        ("ROWCAST_HBASE_THRIFT2_GATEWAYS", ":9090"),
        ("ROWCAST_HBASE_REGION_REPLICATION", "0"),
        ("ROWCAST_HBASE_REGION_REPLICATION", "two"),
        ("ROWCAST_HBASE_READ_CONSISTENCY", "eventual"),
        ("ROWCAST_HBASE_ATTEMPT_TIMEOUT_S", "-1"),
        ("ROWCAST_HBASE_ATTEMPT_TIMEOUT_S", "soon"),
        ("ROWCAST_HBASE_GATEWAY_RETRY_S", "0"),
    ],
)
def test_a_bad_gateway_setting_is_a_clear_error_naming_the_variable(name: str, value: str) -> None:
    """A malformed gateway, replication, consistency or timeout value fails at start-up with
    the variable's name."""
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})


def test_gateway_settings_are_read_from_the_environment() -> None:
    """Gateway lists, replication and consistency come from the environment; the defaults are
    the one gateway at host:port, one replica and STRONG reads (TIMELINE with replicas)."""
    default = Settings.from_env({}).hbase
    assert default.thrift_addresses() == (f"{default.host}:{default.thrift_port}",)
    assert default.thrift2_addresses() == (f"{default.host}:{default.thrift2_port}",)
    assert default.consistency() == "strong"
    hb = Settings.from_env(
        {
            "ROWCAST_HBASE_GATEWAYS": "a:1, b:2",
            "ROWCAST_HBASE_THRIFT2_GATEWAYS": "a:3",
            "ROWCAST_HBASE_REGION_REPLICATION": "2",
            "ROWCAST_HBASE_ATTEMPT_TIMEOUT_S": "0.3",
        }
    ).hbase
    assert hb.thrift_addresses() == ("a:1", "b:2")
    assert hb.thrift2_addresses() == ("a:3",)
    assert hb.region_replication == 2
    assert hb.consistency() == "timeline"
    assert hb.gateway_attempt_timeout_s == 0.3
    strong = Settings.from_env(
        {"ROWCAST_HBASE_REGION_REPLICATION": "2", "ROWCAST_HBASE_READ_CONSISTENCY": "strong"}
    ).hbase
    assert strong.consistency() == "strong"
