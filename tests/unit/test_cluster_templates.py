"""The cluster profile's rendered configuration, port plan and component names (pure)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from itertools import count
from pathlib import Path

import pytest

from rowcast.config import HBaseSettings, Settings
from rowcast_dev.hbase import cluster_templates as tpl
from rowcast_dev.hbase.cluster import (
    ClusterHBase,
    ClusterOptions,
    allocate_ports,
    component_names,
    env_exports,
)
from rowcast_dev.hbase.jvm import HBaseError

DATA = Path("/srv/rc/data")


def _layout(**overrides: object) -> tpl.ClusterLayout:
    options = ClusterOptions(**overrides)  # type: ignore[arg-type]
    ports = allocate_ports(HBaseSettings(), options, pick=_counter(30000))
    return tpl.ClusterLayout(
        data_dir=DATA,
        ports=ports,
        regionservers=options.regionservers,
        gateways=options.gateways,
        datanodes=options.datanodes,
        hdfs=options.hdfs,
        primary_call_timeout_us=options.primary_call_timeout_us,
        zk_session_timeout_ms=options.zk_session_timeout_ms,
        meta_replicas=options.meta_replicas,
    )


def _counter(start: int):  # type: ignore[no-untyped-def]
    numbers = count(start)
    return lambda n: [next(numbers) for _ in range(n)]


def _props(xml: str) -> dict[str, str]:
    root = ET.fromstring(xml)
    return {p.findtext("name", ""): p.findtext("value", "") for p in root.iter("property")}


def test_component_names_in_start_order() -> None:
    """Names are zookeeper, namenode, datanode-i, master, regionserver-i, thrift-i, thrift2-i."""
    names = component_names(ClusterOptions(regionservers=3, gateways=2, datanodes=2))
    assert names == (
        "zookeeper", "namenode", "datanode-1", "datanode-2", "master",
        "regionserver-1", "regionserver-2", "regionserver-3",
        "thrift-1", "thrift-2", "thrift2-1", "thrift2-2",
    )  # fmt: skip


def test_no_hdfs_has_no_hdfs_processes() -> None:
    """Without HDFS there is no namenode or datanode."""
    names = component_names(ClusterOptions(hdfs=False, regionservers=2))
    assert not [n for n in names if "node" in n]
    assert "master" in names and "regionserver-2" in names


def test_port_plan_has_no_clash_and_honours_the_named_ports() -> None:
    """Every role gets its own port; the settings' five ports go to the first of each kind."""
    settings = HBaseSettings(thrift_port=19090, thrift2_port=19091, zookeeper_port=21818,
                             master_port=16000, regionserver_port=16020)  # fmt: skip
    ports = allocate_ports(settings, ClusterOptions(), pick=_counter(40000))
    flat = [port for roles in ports.values() for port in roles.values()]
    assert len(flat) == len(set(flat))
    assert ports["thrift-1"]["rpc"] == 19090
    assert ports["thrift2-1"]["rpc"] == 19091
    assert ports["zookeeper"]["client"] == 21818
    assert ports["master"]["rpc"] == 16000
    assert ports["regionserver-1"]["rpc"] == 16020
    assert set(ports["namenode"]) == {"rpc", "http"}
    assert set(ports["datanode-2"]) == {"data", "ipc", "http"}


def test_port_plan_keeps_known_ports_and_avoids_them_for_new_ones() -> None:
    """A home's recorded ports stay; a picked port already in use by a known one is skipped."""
    known = {"regionserver-1": {"rpc": 40001}, "zookeeper": {"client": 40000}}
    ports = allocate_ports(HBaseSettings(), ClusterOptions(), known, pick=_counter(40000))
    assert ports["regionserver-1"]["rpc"] == 40001
    assert ports["zookeeper"]["client"] == 40000
    flat = [port for roles in ports.values() for port in roles.values()]
    assert len(flat) == len(set(flat))


def test_named_port_that_clashes_with_a_known_one_is_replaced() -> None:
    """A settings port already taken by a recorded role does not get used twice."""
    known = {"zookeeper": {"client": 19090}}
    ports = allocate_ports(
        HBaseSettings(thrift_port=19090), ClusterOptions(), known, pick=_counter(41000)
    )
    assert ports["zookeeper"]["client"] == 19090
    assert ports["thrift-1"]["rpc"] != 19090


def test_server_site_is_distributed_on_hdfs_with_replica_settings() -> None:
    """Master and region servers: distributed, HDFS root, WAL hsync kept, replicas on."""
    lay = _layout()
    props = _props(tpl.hbase_site(lay, "master"))
    assert props["hbase.cluster.distributed"] == "true"
    assert props["hbase.rootdir"] == f"hdfs://127.0.0.1:{lay.port('namenode')}/hbase"
    assert "hbase.unsafe.stream.capability.enforce" not in props
    assert props["hbase.region.replica.replication.enabled"] == "true"
    assert props["hbase.regionserver.storefile.refresh.period"] == "30000"
    assert props["hbase.meta.replica.count"] == "2"
    assert props["hbase.zookeeper.property.clientPort"] == str(lay.port("zookeeper", "client"))
    assert props["zookeeper.session.timeout"] == "15000"
    assert props["hbase.master.port"] == str(lay.port("master"))
    assert props["hbase.master.info.port"] == "-1"
    assert props["hbase.regionserver.info.port"] == "-1"
    # Servers keep HBase's own client timeouts; only gateways are tuned to give up fast.
    assert "hbase.rpc.timeout" not in props


def test_each_regionserver_has_its_own_port() -> None:
    """regionserver-K's hbase-site names its own RPC port."""
    lay = _layout(regionservers=3)
    seen = {_props(tpl.hbase_site(lay, f"regionserver-{k}"))["hbase.regionserver.port"]
            for k in (1, 2, 3)}  # fmt: skip
    assert seen == {str(lay.port(f"regionserver-{k}")) for k in (1, 2, 3)}


def test_gateway_site_has_fast_client_and_primary_call_timeouts() -> None:
    """Gateways: primaryCallTimeout (µs) for get and multiget, meta replicas used, short
    retries whose whole operation fits inside rowcast's 10 s Thrift timeout."""
    lay = _layout(primary_call_timeout_us=7000)
    for gateway in ("thrift-1", "thrift2-2"):
        props = _props(tpl.hbase_site(lay, gateway))
        assert props["hbase.client.primaryCallTimeout.get"] == "7000"
        assert props["hbase.client.primaryCallTimeout.multiget"] == "7000"
        assert props["hbase.meta.replicas.use"] == "true"
        assert props["hbase.ipc.client.specificThreadForWriting"] == "true"
        assert int(props["hbase.client.retries.number"]) <= 5
        assert int(props["hbase.rpc.timeout"]) <= 2000
        assert int(props["hbase.client.operation.timeout"]) < HBaseSettings().timeout_s * 1000
        assert props["hbase.regionserver.thrift.port"] == str(lay.port(gateway))


def test_no_hdfs_uses_a_local_root_and_says_so() -> None:
    """--no-hdfs: file:// root, and the capability check off (the durability caveat)."""
    lay = _layout(hdfs=False)
    props = _props(tpl.hbase_site(lay, "regionserver-1"))
    assert props["hbase.rootdir"] == f"file://{DATA / 'root'}"
    assert props["hbase.unsafe.stream.capability.enforce"] == "false"
    assert "fs.defaultFS" not in _props(tpl.core_site(lay))


def test_hdfs_site_per_datanode_and_replication() -> None:
    """Each datanode has its own directory and ports; blocks are kept min(D, 2) times."""
    lay = _layout(datanodes=3)
    one = _props(tpl.hdfs_site(lay, "datanode-1"))
    two = _props(tpl.hdfs_site(lay, "datanode-2"))
    assert one["dfs.datanode.data.dir"] != two["dfs.datanode.data.dir"]
    assert one["dfs.datanode.address"] == f"127.0.0.1:{lay.port('datanode-1', 'data')}"
    assert one["dfs.replication"] == "2"
    assert _props(tpl.hdfs_site(_layout(datanodes=1), "master"))["dfs.replication"] == "1"
    client = _props(tpl.hdfs_site(lay, "regionserver-1"))
    assert "dfs.datanode.data.dir" not in client
    assert _props(tpl.core_site(lay))["fs.defaultFS"] == f"hdfs://127.0.0.1:{lay.port('namenode')}"


def test_zoo_cfg_allows_the_session_timeout_and_has_no_admin_server() -> None:
    """zoo.cfg: loopback client port, sessions up to 20 ticks, no admin server on 8080."""
    lay = _layout()
    cfg = dict(line.split("=", 1) for line in tpl.zoo_cfg(lay).splitlines())
    assert cfg["clientPort"] == str(lay.port("zookeeper", "client"))
    assert cfg["clientPortAddress"] == "127.0.0.1"
    assert int(cfg["minSessionTimeout"]) <= 15000 <= int(cfg["maxSessionTimeout"])
    assert cfg["admin.enableServer"] == "false"


@pytest.mark.parametrize(
    "options",
    [
        ClusterOptions(regionservers=1, region_replication=2),
        ClusterOptions(regionservers=0),
        ClusterOptions(gateways=0),
        ClusterOptions(zk_session_timeout_ms=60_000),
        ClusterOptions(regionservers=1, region_replication=1, meta_replicas=2),
    ],
)
def test_impossible_options_are_refused(options: ClusterOptions) -> None:
    """Replicas beyond the region servers, no servers, or an unusable session are refused."""
    with pytest.raises(HBaseError):
        options.validate()


def test_client_settings_and_env_name_every_gateway(tmp_path: Path) -> None:
    """client_settings: first gateway as host/ports, all gateways listed, replication; the env
    lines read back through Settings.from_env to the same settings."""
    cluster = ClusterHBase(HBaseSettings(home=tmp_path), ClusterOptions(regionservers=2))
    client = cluster.client_settings()
    lay = cluster.layout()
    assert client.thrift_port == lay.port("thrift-1")
    assert client.thrift2_port == lay.port("thrift2-1")
    assert client.thrift_gateways == (
        f"127.0.0.1:{lay.port('thrift-1')}", f"127.0.0.1:{lay.port('thrift-2')}"
    )  # fmt: skip
    assert client.thrift2_gateways[1] == f"127.0.0.1:{lay.port('thrift2-2')}"
    assert client.region_replication == 2
    assert client.zookeeper_port == lay.port("zookeeper", "client")
    back = Settings.from_env(env_exports(client)).hbase
    assert back.thrift_gateways == client.thrift_gateways
    assert back.thrift2_gateways == client.thrift2_gateways
    assert back.region_replication == 2
    assert (back.thrift_port, back.zookeeper_port) == (client.thrift_port, client.zookeeper_port)
    assert back.home == client.home


def test_regionserver_port_maps_both_ways(tmp_path: Path) -> None:
    """regionserver_port and regionserver_at are inverse; unknown names are refused."""
    cluster = ClusterHBase(HBaseSettings(home=tmp_path), ClusterOptions(regionservers=3))
    for name in ("regionserver-1", "regionserver-3"):
        assert cluster.regionserver_at(cluster.regionserver_port(name)) == name
    with pytest.raises(HBaseError):
        cluster.regionserver_port("regionserver-4")
    with pytest.raises(HBaseError):
        cluster.regionserver_port("master")
