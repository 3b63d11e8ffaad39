"""No single gateway, against real HBase: two real Thrift1 gateways (the standalone's own and a
second ThriftServer JVM started here with the same configuration) over one HBase, point reads
under steady load while one gateway is killed (kill -9) or frozen (SIGSTOP). No read fails, none
outlives its deadline, and the gateway rejoins once it is back."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from prometheus_client import REGISTRY

from rowcast.config import HBaseSettings, Settings
from rowcast.errors import RowcastError
from rowcast.store.admin import Family, TableAdmin
from rowcast.store.client import HBaseClient
from rowcast.store.predictions import PredictionStore
from rowcast.store.schema import PRED_FAMILY
from rowcast_dev.hbase.ports import on_free_ports
from rowcast_dev.hbase.runtime import StandaloneHBase

TABLE = "rowcast:failover_rows"
KEYS = [bytes([i % 256]) + i.to_bytes(4, "big") for i in range(500)]
#: A Predict-like deadline per read, and the attempt timeout that leaves room to fail over.
DEADLINE_S = 2.0
ATTEMPT_S = 0.5
#: Slack over a deadline for the event loop and the thread hand-off on this loaded machine.
SLACK_S = 0.2


class SecondGateway:
    """A second Thrift1 gateway JVM over the standalone HBase, on a port of its own."""

    def __init__(self, hbase: StandaloneHBase, port: int) -> None:
        self._hbase = hbase
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 120.0) -> None:
        java = shutil.which("java")
        assert java is not None
        settings = replace(self._hbase.effective_settings(), thrift_port=self.port)
        classpath = self._hbase.fetch().read_text().strip()
        argv = self._hbase.command("thrift", java, settings, classpath)
        log = open(settings.home / "logs" / f"thrift-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        probe = HBaseClient(replace(settings, thrift_gateways=(self.address,), timeout_s=2.0))
        deadline = time.monotonic() + timeout_s
        try:
            while not probe.ping():
                assert self.proc.poll() is None, "the second gateway exited"
                assert time.monotonic() < deadline, "the second gateway did not answer"
                time.sleep(0.5)
        finally:
            probe.close()

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(30)


@pytest.fixture(scope="module")
def second(hbase: StandaloneHBase) -> Iterator[SecondGateway]:
    port = on_free_ports(HBaseSettings()).thrift_port
    gateway = SecondGateway(hbase, port)
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def two_gateways(settings: Settings, second: SecondGateway) -> HBaseSettings:
    """Settings over both gateways, the table the reads go to written."""
    hb = replace(
        settings.hbase,
        thrift_gateways=(f"{settings.hbase.host}:{settings.hbase.thrift_port}", second.address),
        gateway_attempt_timeout_s=ATTEMPT_S,
        gateway_retry_s=0.5,
    )
    admin = TableAdmin(hb)
    admin.ensure_namespace(timeout_s=60.0)
    admin.create(TABLE, [Family(PRED_FAMILY)], timeout_s=60.0)
    client = HBaseClient(hb)
    try:
        PredictionStore(client).write(TABLE, [(k, float(i)) for i, k in enumerate(KEYS)], 1)
    finally:
        client.close()
    return hb


@dataclass
class Load:
    """Point reads from several concurrent callers; what each read took and how it ended."""

    latencies: list[float]
    failures: list[str]


async def steady_reads(store: PredictionStore, seconds: float, callers: int = 8) -> Load:
    load = Load([], [])
    stop = time.monotonic() + seconds

    async def caller(n: int) -> None:
        i = n
        while time.monotonic() < stop:
            key = KEYS[i % len(KEYS)]
            i += callers
            started = time.monotonic()
            try:
                row = await store.get(TABLE, key, timeout_s=DEADLINE_S)
                assert row is not None and row.output == float(KEYS.index(key))
            except RowcastError as exc:
                load.failures.append(f"{type(exc).__name__}: {exc}")
            load.latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.005)

    await asyncio.gather(*(caller(n) for n in range(callers)))
    return load


def up(address: str) -> float | None:
    return REGISTRY.get_sample_value("rowcast_hbase_gateway_up", {"gateway": address})


def reads_through(address: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "rowcast_hbase_call_seconds_count",
            {"operation": "PredictionStore.get", "gateway": address},
        )
        or 0.0
    )


async def wait_until(check: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.1)
    return False


async def faulted_load(
    store: PredictionStore, fault: object, *, before_s: float = 2.0, after_s: float = 6.0
) -> Load:
    """Steady reads for before_s + after_s seconds, `fault()` run after before_s."""

    async def inject() -> None:
        await asyncio.sleep(before_s)
        fault()  # type: ignore[operator]

    load, _ = await asyncio.gather(steady_reads(store, before_s + after_s), inject())
    return load


def report(name: str, load: Load) -> str:
    lat = sorted(load.latencies)
    return (
        f"{name}: {len(lat)} reads, {len(load.failures)} failed, "
        f"p50 {lat[len(lat) // 2] * 1000:.1f} ms, p99 {lat[int(len(lat) * 0.99)] * 1000:.1f} ms, "
        f"max {lat[-1] * 1000:.1f} ms"
    )


async def test_kill_9_of_a_gateway_fails_no_read_and_it_rejoins_after_restart(
    two_gateways: HBaseSettings, second: SecondGateway
) -> None:
    """kill -9 of one of two gateways under steady point reads: no read fails, none outlives
    its deadline; the gateway is marked down, and after a restart it is probed back in and
    takes reads again."""
    client = HBaseClient(two_gateways)
    store = PredictionStore(client)
    try:
        load = await faulted_load(store, lambda: second.signal(signal.SIGKILL))
        print(report("kill -9", load))
        assert load.failures == []
        assert max(load.latencies) < DEADLINE_S + SLACK_S
        assert up(second.address) == 0
        second.proc.wait(30)  # type: ignore[union-attr]
        second.start()
        assert await wait_until(lambda: up(second.address) == 1, 30.0)
        before = reads_through(second.address)
        rejoined = await steady_reads(store, 2.0)
        assert rejoined.failures == []
        assert reads_through(second.address) > before
    finally:
        client.close()


async def test_sigstop_of_a_gateway_fails_no_read_and_it_rejoins_after_sigcont(
    two_gateways: HBaseSettings, second: SecondGateway
) -> None:
    """SIGSTOP of one of two gateways (it accepts connections, never answers) under steady
    point reads: no read fails and none outlives its deadline; after SIGCONT the gateway is
    probed back in and takes reads again."""
    client = HBaseClient(two_gateways)
    store = PredictionStore(client)
    try:
        await steady_reads(store, 1.0)  # both gateways warm, with pooled connections
        load = await faulted_load(store, lambda: second.signal(signal.SIGSTOP))
        print(report("SIGSTOP", load))
        assert load.failures == []
        assert max(load.latencies) < DEADLINE_S + SLACK_S
        assert up(second.address) == 0
        second.signal(signal.SIGCONT)
        assert await wait_until(lambda: up(second.address) == 1, 30.0)
        before = reads_through(second.address)
        rejoined = await steady_reads(store, 2.0)
        assert rejoined.failures == []
        assert reads_through(second.address) > before
    finally:
        second.signal(signal.SIGCONT)
        client.close()
