"""The cluster profile for real: ZooKeeper, HDFS (NameNode + 2 DataNodes), a master, 3 region
servers and 2 + 2 Thrift gateways, each its own JVM under one home (the package's `cluster`,
tests/integration/cluster/conftest.py, whose teardown checks that `stop` leaves no process).

The tests run in file order: status, a replicated table, TIMELINE reads of a secondary, a kill
-9 of the region server holding primaries (reassignment measured, the server restarted), a
gateway kill and restart, the CLI.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from typing import Any

import happybase
import pytest
from click.testing import CliRunner
from kazoo.client import KazooClient
from thriftpy2.protocol import TBinaryProtocolFactory
from thriftpy2.rpc import make_client
from thriftpy2.transport import TBufferedTransportFactory

from rowcast.store.idl import hbase2
from rowcast_dev.cli.hbase_cmd import hbase as hbase_cli
from rowcast_dev.hbase.cluster import ClusterHBase
from tests.integration.cluster.conftest import FIGURES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

TABLE = "a1_replicated"


def _thrift2(port: int) -> Any:
    return make_client(
        hbase2.THBaseService, "127.0.0.1", port, timeout=60_000,
        trans_factory=TBufferedTransportFactory(), proto_factory=TBinaryProtocolFactory(),
    )  # fmt: skip


def _meta(port: int, table: str) -> dict[bytes, dict[bytes, bytes]]:
    """hbase:meta rows of `table`'s regions, read through Thrift1. The scan starts at
    "<table>,," (a start row of "<table>," skips the first region: meta compares keys as
    table, start key, region id)."""
    conn = happybase.Connection("127.0.0.1", port, timeout=10_000)
    try:
        rows = conn.table("hbase:meta").scan(
            row_start=f"{table},,".encode(), row_stop=f"{table}-".encode()
        )
        return dict(rows)
    finally:
        conn.close()


def _server_port(value: bytes | None) -> int | None:
    return int(value.split(b":")[1]) if value else None


@pytest.fixture(scope="module")
def replicated(cluster: ClusterHBase) -> str:
    """A two-region table with REGION_REPLICATION=2, created through the second Thrift2
    gateway with the table attribute (as store/admin.py does)."""
    client = _thrift2(int(cluster.thrift2_gateways()[1].rsplit(":", 1)[1]))
    try:
        client.createTable(
            hbase2.TTableDescriptor(
                tableName=hbase2.TTableName(ns=b"default", qualifier=TABLE.encode()),
                columns=[hbase2.TColumnFamilyDescriptor(name=b"f")],
                attributes={b"REGION_REPLICATION": b"2"},
            ),
            [b"m"],
        )
    finally:
        client.close()
    return TABLE


def _wait_replicas_open(port: int, table: str, timeout_s: float = 120.0) -> dict[bytes, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = _meta(port, table)
        if rows and all(
            r.get(b"info:state") == b"OPEN" and r.get(b"info:state_0001") == b"OPEN"
            for r in rows.values()
        ):
            return rows
        assert time.monotonic() < deadline, f"replicas of {table} not open: {rows}"
        time.sleep(0.5)


def test_status_shows_every_process_running_and_ready(cluster: ClusterHBase) -> None:
    """Every process runs with its own ports and log; all region servers checked in; ready."""
    status = cluster.status()
    assert status.ready, status.detail
    names = [p.name for p in status.processes]
    assert names == list(cluster.components())
    assert set(names) == {
        "zookeeper", "namenode", "datanode-1", "datanode-2", "master", "regionserver-1",
        "regionserver-2", "regionserver-3", "thrift-1", "thrift-2", "thrift2-1", "thrift2-2",
    }  # fmt: skip
    assert all(p.running and p.pid for p in status.processes)
    ports = [port for p in status.processes for port in p.ports.values()]
    assert len(ports) == len(set(ports))
    assert len({p.pid for p in status.processes}) == len(names)
    assert all(p.log.exists() for p in status.processes)
    assert len(status.live_regionservers) == 3
    for proc in status.processes:
        FIGURES[f"rss_mib_{proc.name}"] = round((proc.rss_bytes or 0) / 2**20)
    # hbase:meta has a second replica (hbase.meta.replica.count=2), located in ZooKeeper.
    zk = KazooClient(hosts=f"127.0.0.1:{cluster.client_settings().zookeeper_port}")
    zk.start(timeout=10)
    try:
        deadline = time.monotonic() + 60
        while "meta-region-server-1" not in zk.get_children("/hbase"):
            assert time.monotonic() < deadline, zk.get_children("/hbase")
            time.sleep(0.5)
    finally:
        zk.stop()
        zk.close()
    # The HBase root really is in HDFS.
    site = (cluster.conf_dir("master") / "hbase-site.xml").read_text()
    assert "hdfs://127.0.0.1:" in site


def test_replicas_land_on_different_regionservers(cluster: ClusterHBase, replicated: str) -> None:
    """REGION_REPLICATION=2 through Thrift2: each region's primary (info:server) and
    secondary (info:server_0001) are on different region servers."""
    port = cluster.client_settings().thrift_port
    rows = _wait_replicas_open(port, replicated)
    assert len(rows) == 2
    for row in rows.values():
        primary = _server_port(row[b"info:server"])
        secondary = _server_port(row[b"info:server_0001"])
        assert primary != secondary
        assert cluster.regionserver_at(primary or 0) is not None
        assert cluster.regionserver_at(secondary or 0) is not None


def test_timeline_read_from_the_secondary(cluster: ClusterHBase, replicated: str) -> None:
    """A row put through one Thrift1 gateway is read back from replica 1 through Thrift2 with
    TIMELINE consistency (stale=True: answered by the secondary)."""
    settings = cluster.client_settings()
    conn = happybase.Connection("127.0.0.1", settings.thrift_port, timeout=10_000)
    row, value = f"z-{uuid.uuid4().hex}".encode(), uuid.uuid4().hex.encode()
    try:
        conn.table(replicated).put(row, {b"f:q": value})
    finally:
        conn.close()
    client = _thrift2(int(settings.thrift2_gateways[1].rsplit(":", 1)[1]))
    deadline = time.monotonic() + 60
    try:
        while True:
            got = client.get(
                replicated.encode(),
                hbase2.TGet(row=row, consistency=hbase2.TConsistency.TIMELINE, targetReplicaId=1),
            )
            if got.columnValues:
                break
            assert time.monotonic() < deadline, "secondary never saw the row"
            time.sleep(0.5)
    finally:
        client.close()
    assert [cv.value for cv in got.columnValues] == [value]
    assert got.stale is True


def test_kill_of_primary_regionserver_is_recovered(cluster: ClusterHBase, replicated: str) -> None:
    """kill -9 of the region server holding a primary: the master reassigns its regions to the
    other servers (its WAL split from HDFS: the row written just before is still there), a
    put/get works again, and `restart` brings the server back."""
    gateway = cluster.client_settings().thrift_port
    rows = _wait_replicas_open(gateway, replicated)
    victim_port = _server_port(next(iter(rows.values()))[b"info:server"])
    victim = cluster.regionserver_at(victim_port or 0)
    assert victim is not None
    # Written to the victim's memstore and WAL only: recovering it needs the WAL in HDFS.
    conn = happybase.Connection("127.0.0.1", gateway, timeout=10_000)
    conn.table(replicated).put(b"a-before-kill", {b"f:q": b"kept"})
    conn.close()

    began = time.monotonic()
    cluster.kill(victim, signal.SIGKILL)
    deadline = began + 180
    while True:
        try:
            rows = _meta(gateway, replicated)
        except Exception:  # meta itself may be moving; try again
            rows = {}
        if rows and all(
            _server_port(r.get(b"info:server")) not in (None, victim_port)
            and r.get(b"info:state") == b"OPEN"
            for r in rows.values()
        ):
            break
        assert time.monotonic() < deadline, f"primaries not reassigned: {rows}"
        time.sleep(0.5)
    FIGURES["kill_to_reassigned_s"] = round(time.monotonic() - began, 1)

    conn = happybase.Connection("127.0.0.1", gateway, timeout=10_000)
    try:
        table = conn.table(replicated)
        assert table.row(b"a-before-kill") == {b"f:q": b"kept"}
        table.put(b"a-after-kill", {b"f:q": b"new"})
        assert table.row(b"a-after-kill") == {b"f:q": b"new"}
    finally:
        conn.close()
    FIGURES["kill_to_put_get_s"] = round(time.monotonic() - began, 1)

    began = time.monotonic()
    cluster.restart(victim, timeout_s=300)
    FIGURES["regionserver_restart_s"] = round(time.monotonic() - began, 1)
    assert victim in cluster.pids()
    live = cluster.live_regionservers() or ()
    assert any(s.split(",")[1] == str(victim_port) for s in live)


def test_gateway_kill_and_restart(cluster: ClusterHBase) -> None:
    """A killed Thrift1 gateway is gone from status; `restart` brings it back serving."""
    cluster.kill("thrift-2", signal.SIGKILL)
    deadline = time.monotonic() + 20
    while "thrift-2" in cluster.pids():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert not cluster.status().ready
    began = time.monotonic()
    cluster.restart("thrift-2", timeout_s=180)
    FIGURES["gateway_restart_s"] = round(time.monotonic() - began, 1)
    assert cluster.status().ready


def test_cli_status_env_and_kill_of_unknown(cluster: ClusterHBase) -> None:
    """`rowcast hbase status --json` lists every process; `env` names every gateway;
    an unknown component is refused."""
    home = ["--home", str(cluster.paths.home)]
    runner = CliRunner()
    done = runner.invoke(hbase_cli, ["status", "--json", *home])
    assert done.exit_code == 0, done.output
    snapshot = json.loads(done.output)
    assert snapshot["profile"] == "cluster"
    assert set(snapshot["components"]) == set(cluster.components())
    env = runner.invoke(hbase_cli, ["env", *home])
    assert env.exit_code == 0
    gateways = ",".join(cluster.gateways())
    assert f"export ROWCAST_HBASE_GATEWAYS={gateways}" in env.output
    assert "export ROWCAST_HBASE_REGION_REPLICATION=2" in env.output
    bad = runner.invoke(hbase_cli, ["kill", "regionserver-9", *home])
    assert bad.exit_code != 0
    assert "no component" in bad.output
