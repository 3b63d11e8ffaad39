"""The embedded standalone HBase, for real: one start, a second start, a round trip, a stop.

Slow (~30-40 s): one HBase start for the lifecycle test. The other tests fail before or right
after launching a JVM and share the module's home so Maven resolves the classpath only once.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import happybase
import pytest

from rowcast.config import HBaseSettings
from rowcast_dev.hbase.ports import on_free_ports, port_is_free
from rowcast_dev.hbase.runtime import (
    COMPONENTS,
    HBaseStartError,
    PortInUseError,
    StandaloneHBase,
    ports_of,
)
from tests.integration.processes import marked_processes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hbase-home")


def _settings(home: Path) -> HBaseSettings:
    return on_free_ports(HBaseSettings(home=home))


@pytest.fixture
def hbase(home: Path) -> Iterator[StandaloneHBase]:
    runtime = StandaloneHBase(_settings(home))
    yield runtime
    runtime.stop(grace_s=30)  # whatever the test did, leave nothing running


def test_start_twice_round_trip_and_stop(hbase: StandaloneHBase, home: Path) -> None:
    assert hbase.start(timeout_s=240) is True
    assert hbase.ready()
    pids = hbase.pids()
    assert set(pids) == set(COMPONENTS)
    status = hbase.status()
    assert status.state == "ready", status.detail
    assert dict(status.ports) == ports_of(hbase.settings)
    for port in status.ports.values():
        assert not port_is_free(port)

    # A second start (a new object, as a second CLI call would be) starts nothing.
    again = StandaloneHBase(hbase.settings)
    assert again.start(timeout_s=60) is False
    assert again.pids() == pids
    assert sorted(marked_processes(home)) == sorted(pids.values())

    conn = happybase.Connection("127.0.0.1", hbase.settings.thrift_port, timeout=10_000)
    try:
        if b"it_data" not in conn.tables():
            conn.create_table("it_data", {"f": {"max_versions": 1}})
        value = uuid.uuid4().hex.encode()
        conn.table("it_data").put(b"row-1", {b"f:q": value})
        assert conn.table("it_data").row(b"row-1") == {b"f:q": value}
    finally:
        conn.close()

    assert hbase.stop() is True
    assert marked_processes(home) == []
    assert not hbase.is_running()
    for port in status.ports.values():
        assert port_is_free(port), f"port {port} still taken after stop"
    assert not list((home / "run").glob("*.pid"))
    assert hbase.status().state == "not_running"
    assert hbase.stop() is False  # idempotent


def test_busy_port_fails_fast_and_names_it(hbase: StandaloneHBase, home: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", hbase.settings.thrift2_port))
        squatter.listen()
        with pytest.raises(PortInUseError, match=rf"thrift2 port {hbase.settings.thrift2_port}"):
            hbase.start(timeout_s=60)
    assert marked_processes(home) == []


def test_failed_start_cleans_up_and_explains(home: Path) -> None:
    # A heap the JVM refuses: the master dies at once, the gateways it started must go too.
    runtime = StandaloneHBase(replace(_settings(home), master_heap="1k"))
    try:
        with pytest.raises(HBaseStartError) as failure:
            runtime.start(timeout_s=60)
        assert "master exited with code" in failure.value.message
        assert "heap" in failure.value.log_excerpt.lower()
        assert marked_processes(home) == []
        assert not runtime.is_running()
    finally:
        runtime.stop(grace_s=10)
