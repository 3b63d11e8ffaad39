"""Configuration files of the embedded standalone HBase, rendered from `HBaseSettings`.

Kept as Python (not data files) so the values are typed and testable; both renderers are pure.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

from rowcast.config import HBaseSettings

#: Everything the JVMs bind to. The embedded HBase is a single-machine tool, never exposed.
LOOPBACK = "127.0.0.1"


def hbase_site_properties(settings: HBaseSettings, data_dir: Path) -> dict[str, str]:
    """The hbase-site.xml properties, in file order."""
    return {
        # One JVM runs master, regionserver and ZooKeeper (MiniZooKeeperCluster).
        "hbase.cluster.distributed": "false",
        "hbase.rootdir": f"file://{data_dir / 'root'}",
        "hbase.tmp.dir": str(data_dir / "tmp"),
        "hbase.zookeeper.property.dataDir": str(data_dir / "zk"),
        "hbase.zookeeper.quorum": LOOPBACK,
        "hbase.zookeeper.property.clientPort": str(settings.zookeeper_port),
        # Read by MiniZooKeeperCluster in standalone mode (default: the loopback host name).
        "hbase.zookeeper.property.clientPortAddress": LOOPBACK,
        # On SIGTERM the in-process ZooKeeper goes down before the regionserver, which then
        # retries deleting its znode with exponential backoff from this base (default 1000 ms:
        # ~20 s of a 22 s stop). ZooKeeper is local, so long backoffs buy nothing.
        "zookeeper.recovery.retry.intervalmill": "200",
        # The ZooKeeper session of the in-process regionserver (standalone mode sets it from
        # this key, default 10 s). A JVM stalled for a few seconds on a loaded 2-core machine
        # (a long GC, a SIGSTOP in the chaos test) lost its session with 10 s: the
        # regionserver aborted while the master lived on, and every region stayed in
        # transition. 30 s is within ZooKeeper's default maximum (20 ticks of 2 s).
        "zookeeper.session.timeout.localHBaseCluster": "30000",
        # The local file system has no hflush/hsync; without this the WAL refuses to open.
        "hbase.unsafe.stream.capability.enforce": "false",
        "hbase.wal.provider": "filesystem",
        # Pin every advertised name and bind address to loopback so a machine with an odd
        # hostname (containers) still finds its own master and regionserver.
        "hbase.master.hostname": "localhost",
        "hbase.unsafe.regionserver.hostname": "localhost",
        "hbase.master.ipc.address": LOOPBACK,
        "hbase.regionserver.ipc.address": LOOPBACK,
        # LocalHBaseCluster would otherwise be free to pick random ports; we want known ones
        # so the pre-flight port check and `status` are meaningful.
        "hbase.localcluster.assign.random.ports": "false",
        "hbase.master.port": str(settings.master_port),
        "hbase.regionserver.port": str(settings.regionserver_port),
        # No web UIs: they would need three more ports and nothing here uses them.
        "hbase.master.info.port": "-1",
        "hbase.regionserver.info.port": "-1",
        "hbase.thrift.info.port": "-1",
        "hbase.regionserver.thrift.port": str(settings.thrift_port),
        "hbase.regionserver.thrift.ipaddress": LOOPBACK,
        # Pooled happybase connections sit idle for long stretches; don't drop them after 60 s.
        "hbase.thrift.server.socket.read.timeout": "3600000",
        # Fail a call in seconds rather than retrying for minutes, so errors surface quickly.
        "hbase.client.retries.number": "3",
        "hbase.rpc.timeout": "5000",
        "hbase.client.operation.timeout": "10000",
    }


def render_hbase_site(settings: HBaseSettings, data_dir: Path) -> str:
    """hbase-site.xml for the standalone HBase whose data lives under `data_dir`."""
    lines = ['<?xml version="1.0"?>', "<configuration>"]
    for name, value in hbase_site_properties(settings, data_dir).items():
        lines.append(
            f"  <property><name>{escape(name)}</name><value>{escape(value)}</value></property>"
        )
    lines.append("</configuration>")
    return "\n".join(lines) + "\n"


def render_log4j2() -> str:
    """log4j2.properties: everything to stderr (the runtime redirects it into a log file)."""
    return (
        "\n".join(
            [
                "status = warn",
                "appender.console.type = Console",
                "appender.console.name = console",
                "appender.console.target = SYSTEM_ERR",
                "appender.console.layout.type = PatternLayout",
                "appender.console.layout.pattern = %d{ISO8601} %-5p [%t] %c{2}: %m%n",
                "rootLogger = INFO,console",
                # ZooKeeper and Hadoop are chatty at INFO and say nothing rowcast acts on.
                "logger.zk.name = org.apache.zookeeper",
                "logger.zk.level = WARN",
                "logger.hadoop.name = org.apache.hadoop",
                "logger.hadoop.level = WARN",
                "logger.hbase.name = org.apache.hadoop.hbase",
                "logger.hbase.level = INFO",
            ]
        )
        + "\n"
    )
