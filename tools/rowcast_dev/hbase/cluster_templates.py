"""Configuration files of the multi-process HBase cluster (`rowcast hbase start --regionservers N`).

Every JVM gets a conf directory of its own (conf/<component>/), rendered here from a
`ClusterLayout`: which ports each process uses and where its data lives. Everything is a pure
function of its arguments, so the unit tests read exactly what the JVMs will read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from xml.sax.saxutils import escape

from rowcast_dev.hbase.templates import LOOPBACK

#: Process names, in start order within their tier.
ZOOKEEPER: Final = "zookeeper"
NAMENODE: Final = "namenode"
MASTER: Final = "master"
DATANODE_PREFIX: Final = "datanode-"
REGIONSERVER_PREFIX: Final = "regionserver-"
THRIFT_PREFIX: Final = "thrift-"
THRIFT2_PREFIX: Final = "thrift2-"

#: ZooKeeper's tick (ms); sessions may last 2 to 20 ticks (4 s to 40 s).
ZK_TICK_MS: Final = 2000


@dataclass(frozen=True)
class ClusterLayout:
    """Everything the config files depend on: counts, ports and directories of one cluster."""

    data_dir: Path
    #: Role -> port, for each process ("zookeeper": {"client": 2181}, ...).
    ports: Mapping[str, Mapping[str, int]]
    regionservers: int
    gateways: int
    datanodes: int
    hdfs: bool
    #: Microseconds a gateway waits on a primary replica before also asking the secondaries.
    primary_call_timeout_us: int
    #: ZooKeeper session of the region servers; see `server_properties`.
    zk_session_timeout_ms: int
    #: Copies of hbase:meta's one region (1 = no meta replicas).
    meta_replicas: int = 2

    def port(self, component: str, role: str = "rpc") -> int:
        return self.ports[component][role]

    @property
    def rootdir(self) -> str:
        if self.hdfs:
            return f"hdfs://{LOOPBACK}:{self.port(NAMENODE)}/hbase"
        return f"file://{self.data_dir / 'root'}"

    @property
    def dfs_replication(self) -> int:
        """Two copies of every block when there are two datanodes or more: a WAL survives the
        loss of one disk. More than two buys nothing on one machine."""
        return max(1, min(self.datanodes, 2))


def component_names(
    regionservers: int, gateways: int, datanodes: int, hdfs: bool
) -> tuple[str, ...]:
    """Every process of the cluster, in start order (stop order is the reverse)."""
    names = [ZOOKEEPER]
    if hdfs:
        names += [NAMENODE, *(f"{DATANODE_PREFIX}{i}" for i in range(1, datanodes + 1))]
    names.append(MASTER)
    names += [f"{REGIONSERVER_PREFIX}{i}" for i in range(1, regionservers + 1)]
    names += [f"{THRIFT_PREFIX}{i}" for i in range(1, gateways + 1)]
    names += [f"{THRIFT2_PREFIX}{i}" for i in range(1, gateways + 1)]
    return tuple(names)


def port_roles(component: str) -> tuple[str, ...]:
    """The ports one process listens on (web UIs are off, except HDFS's, which cannot be)."""
    if component == ZOOKEEPER:
        return ("client",)
    if component == NAMENODE:
        return ("rpc", "http")
    if component.startswith(DATANODE_PREFIX):
        return ("data", "ipc", "http")
    return ("rpc",)


def _xml(properties: Mapping[str, str]) -> str:
    lines = ['<?xml version="1.0"?>', "<configuration>"]
    for name, value in properties.items():
        lines.append(
            f"  <property><name>{escape(name)}</name><value>{escape(value)}</value></property>"
        )
    lines.append("</configuration>")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------- ZooKeeper


def zoo_cfg(layout: ClusterLayout) -> str:
    """zoo.cfg of the one ZooKeeper server (ZooKeeperServerMain, standalone ZooKeeper)."""
    lines = {
        "tickTime": str(ZK_TICK_MS),
        "dataDir": str(layout.data_dir / "zk"),
        "clientPort": str(layout.port(ZOOKEEPER, "client")),
        "clientPortAddress": LOOPBACK,
        # Sessions between 2 and 20 ticks; the region servers ask for zk_session_timeout_ms.
        "minSessionTimeout": str(2 * ZK_TICK_MS),
        "maxSessionTimeout": str(20 * ZK_TICK_MS),
        # Every region server, gateway, master and rowcast server holds a connection.
        "maxClientCnxns": "0",
        # ZooKeeper 3.5+ starts an HTTP admin server on 8080 by default: not here.
        "admin.enableServer": "false",
        # Old snapshots and logs are purged hourly, keeping three.
        "autopurge.snapRetainCount": "3",
        "autopurge.purgeInterval": "1",
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


# --------------------------------------------------------------------------------- HDFS


def core_site(layout: ClusterLayout) -> str:
    """core-site.xml, the same for every process (HDFS's and HBase's Hadoop client)."""
    props = {"hadoop.tmp.dir": str(layout.data_dir / "hadoop-tmp")}
    if layout.hdfs:
        props["fs.defaultFS"] = f"hdfs://{LOOPBACK}:{layout.port(NAMENODE)}"
    return _xml(props)


def hdfs_properties(layout: ClusterLayout, component: str) -> dict[str, str]:
    """hdfs-site.xml properties for `component` (datanodes get their own ports and directory;
    everyone else sees the client side only)."""
    props = {
        # The region servers write their WALs and HFiles with this many copies, and HBase
        # rolls a WAL whose pipeline has fewer (hbase.regionserver.hlog.tolerable.lowreplication
        # defaults to it): it must not exceed the number of datanodes.
        "dfs.replication": str(layout.dfs_replication),
        "dfs.namenode.name.dir": str(layout.data_dir / "namenode"),
        "dfs.namenode.rpc-address": f"{LOOPBACK}:{layout.port(NAMENODE)}" if layout.hdfs else "",
        # The NameNode's web server cannot be switched off; it also serves /jmx, which the
        # runtime reads to learn how many datanodes are live and whether safe mode is over.
        "dfs.namenode.http-address": (
            f"{LOOPBACK}:{layout.port(NAMENODE, 'http')}" if layout.hdfs else ""
        ),
        # On a restart, leave safe mode as soon as the blocks are reported (default: 30 s more).
        "dfs.namenode.safemode.extension": "0",
        # One user runs everything; HDFS permissions would only get in the way.
        "dfs.permissions.enabled": "false",
        # Datanodes register by IP, so the NameNode must not insist on resolvable names.
        "dfs.namenode.datanode.registration.ip-hostname-check": "false",
        # A datanode that stops heart-beating is avoided for reads and writes after 10 s
        # (default 30 s), before the NameNode declares it dead.
        "dfs.namenode.stale.datanode.interval": "10000",
        "dfs.namenode.avoid.read.stale.datanode": "true",
        "dfs.namenode.avoid.write.stale.datanode": "true",
        # Tighter client socket timeout (default 60 s) so a hung datanode fails a read in 10 s.
        "dfs.client.socket-timeout": "10000",
    }
    if not layout.hdfs:
        return {k: v for k, v in props.items() if v}
    if component.startswith(DATANODE_PREFIX):
        props.update(
            {
                "dfs.datanode.data.dir": str(layout.data_dir / component),
                "dfs.datanode.address": f"{LOOPBACK}:{layout.port(component, 'data')}",
                "dfs.datanode.ipc.address": f"{LOOPBACK}:{layout.port(component, 'ipc')}",
                "dfs.datanode.http.address": f"{LOOPBACK}:{layout.port(component, 'http')}",
                "dfs.datanode.hostname": LOOPBACK,
                # Never fill the disk: keep 1 GiB free for everything else on the machine.
                "dfs.datanode.du.reserved": str(1 << 30),
            }
        )
    return props


def hdfs_site(layout: ClusterLayout, component: str) -> str:
    return _xml(hdfs_properties(layout, component))


# --------------------------------------------------------------------------------- HBase


def server_properties(layout: ClusterLayout) -> dict[str, str]:
    """hbase-site.xml properties shared by the master and every region server."""
    props = {
        # Master, region servers and ZooKeeper are separate processes.
        "hbase.cluster.distributed": "true",
        "hbase.rootdir": layout.rootdir,
        "hbase.tmp.dir": str(layout.data_dir / "hbase-tmp"),
        "hbase.zookeeper.quorum": LOOPBACK,
        "hbase.zookeeper.property.clientPort": str(layout.port(ZOOKEEPER, "client")),
        # How long a region server (or the master) may go silent before ZooKeeper expires its
        # session and the master starts recovering its regions: the largest part of the time
        # from a kill -9 to reassignment. HBase's default is 90 s; its guidance is 20-30 s for
        # busy clusters. Chosen by measuring here (docs/hbase.md): short enough that a dead
        # primary's regions move in well under a minute, long enough that a GC pause or a
        # starved JVM on a loaded 2-core machine does not lose its session.
        "zookeeper.session.timeout": str(layout.zk_session_timeout_ms),
        # ZooKeeper is local: retry a failed ZooKeeper operation after 200 ms, not 1 s.
        "zookeeper.recovery.retry.intervalmill": "200",
        # FSHLog: writes the WAL through DFSOutputStream and hsyncs/hflushes it. Named
        # explicitly so the WAL is the same whether the root is HDFS or (with --no-hdfs) local.
        "hbase.wal.provider": "filesystem",
        # Pin every advertised name and bind address to loopback (see templates.py).
        "hbase.master.hostname": "localhost",
        "hbase.unsafe.regionserver.hostname": "localhost",
        "hbase.master.ipc.address": LOOPBACK,
        "hbase.regionserver.ipc.address": LOOPBACK,
        "hbase.master.port": str(layout.port(MASTER)),
        # No web UIs: nothing here reads them, and each would need a port.
        "hbase.master.info.port": "-1",
        "hbase.regionserver.info.port": "-1",
        "hbase.thrift.info.port": "-1",
        # Assign nothing until every region server has checked in (or 10 s have passed), so
        # that a fresh cluster spreads its regions and replicas over all of them.
        "hbase.master.wait.on.regionservers.mintostart": str(layout.regionservers),
        "hbase.master.wait.on.regionservers.timeout": "10000",
        # Region replicas (timeline-consistent reads of the version tables):
        # secondaries follow their primary's memstore through replication of the WAL, not
        # only its flushed files...
        "hbase.region.replica.replication.enabled": "true",
        # ...and also re-read the primary's store files every 30 s (default 0: never), which
        # is how they see bulk loads and compactions.
        "hbase.regionserver.storefile.refresh.period": "30000",
        # Region replicas need hbase:meta's locations to survive a region server's loss too.
        "hbase.meta.replica.count": str(layout.meta_replicas),
    }
    if not layout.hdfs:
        # A local root has no hflush/hsync: HBase refuses to open a WAL on it unless told
        # to ignore that. This is the durability caveat of --no-hdfs (docs/hbase.md).
        props["hbase.unsafe.stream.capability.enforce"] = "false"
    return props


def client_properties(layout: ClusterLayout) -> dict[str, str]:
    """The Java client settings of the Thrift gateways (they are HBase clients)."""
    timeout = str(layout.primary_call_timeout_us)
    return {
        # A TIMELINE get waits this long (microseconds) on the primary replica, then asks the
        # secondaries too and takes the first answer; a primary that refuses the connection
        # (its region server is dead) sends the call to the secondaries at once.
        "hbase.client.primaryCallTimeout.get": timeout,
        "hbase.client.primaryCallTimeout.multiget": timeout,
        # Look hbase:meta up on its replicas too, so a lost meta primary does not stop
        # location lookups.
        "hbase.meta.replicas.use": "true",
        # Needed by replica reads: writes go out on their own thread, so a call cancelled on
        # the primary (its secondary answered first) cannot break the shared connection.
        "hbase.ipc.client.specificThreadForWriting": "true",
        # Give up on a region server fast. One RPC waits at most 2 s (a SIGSTOPped server
        # accepts connections but never answers); a whole operation, retries included, at
        # most 6 s, within rowcast's 10 s Thrift socket timeout so that the caller sees an
        # error it can retry elsewhere rather than a hung socket. Three retries 200 ms apart
        # (HBase backs off from hbase.client.pause) ride out a region moving between servers.
        # STRONG reads and writes of a region whose server died fail until the master has
        # reassigned it (ZooKeeper session expiry + WAL split); the rowcast services retry
        # and the audit spool absorbs that outage.
        "hbase.rpc.timeout": "2000",
        "hbase.rpc.read.timeout": "2000",
        "hbase.client.operation.timeout": "6000",
        "hbase.client.meta.operation.timeout": "6000",
        "hbase.client.retries.number": "3",
        "hbase.client.pause": "200",
        # Pooled rowcast connections sit idle for long stretches; don't drop them after 60 s.
        "hbase.thrift.server.socket.read.timeout": "3600000",
    }


def hbase_properties(layout: ClusterLayout, component: str) -> dict[str, str]:
    """hbase-site.xml properties of one process."""
    props = server_properties(layout)
    if component.startswith(REGIONSERVER_PREFIX):
        props["hbase.regionserver.port"] = str(layout.port(component))
    if component.startswith((THRIFT_PREFIX, THRIFT2_PREFIX)):
        props.update(client_properties(layout))
        props["hbase.regionserver.thrift.port"] = str(layout.port(component))
        props["hbase.regionserver.thrift.ipaddress"] = LOOPBACK
    return props


def hbase_site(layout: ClusterLayout, component: str) -> str:
    return _xml(hbase_properties(layout, component))
