"""The cluster profile: a distributed HBase on one machine, every process its own JVM.

ZooKeeper, an HDFS NameNode and D DataNodes (the HBase root and the WALs live in HDFS, so a
killed region server's edits are recovered from its WAL), a master, N region servers and G
Thrift1 plus G Thrift2 gateways, all on 127.0.0.1 with ports of their own, one log each under
`<home>/logs` and one conf directory each under `<home>/conf/<component>`.

The ports and options of a home are chosen once, on its first start, and kept in
`<home>/data/cluster.json`: HDFS and HBase record host:port names in their data, so a home
always comes back on the ports it was created with. `run/state.json` exists while it runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final, Literal

from kazoo.client import KazooClient

from rowcast.config import HBaseSettings
from rowcast_dev.hbase import cluster_templates as tpl
from rowcast_dev.hbase import processes
from rowcast_dev.hbase.cluster_templates import ClusterLayout
from rowcast_dev.hbase.jvm import (
    HBaseError,
    HBaseStartError,
    HBaseStopError,
    JvmGroup,
    Layout,
    PortInUseError,
    fetch_classpath,
    java_command,
    java_or_fail,
)
from rowcast_dev.hbase.ports import free_ports, port_holder, port_is_free
from rowcast_dev.hbase.probe import ProbeResult, probe, probe_admin
from rowcast_dev.hbase.runtime import StandaloneHBase
from rowcast_dev.hbase.templates import LOOPBACK, render_log4j2

PROFILE: Final = "cluster"
#: Gateways, HDFS and ZooKeeper stop in seconds; they get at most this long before SIGKILL.
_QUICK_GRACE_S: Final = 20.0
_MAIN: Final[Mapping[str, str]] = {
    tpl.ZOOKEEPER: "org.apache.zookeeper.server.ZooKeeperServerMain",
    tpl.NAMENODE: "org.apache.hadoop.hdfs.server.namenode.NameNode",
    tpl.DATANODE_PREFIX: "org.apache.hadoop.hdfs.server.datanode.DataNode",
    tpl.MASTER: "org.apache.hadoop.hbase.master.HMaster",
    tpl.REGIONSERVER_PREFIX: "org.apache.hadoop.hbase.regionserver.HRegionServer",
    tpl.THRIFT2_PREFIX: "org.apache.hadoop.hbase.thrift2.ThriftServer",
    tpl.THRIFT_PREFIX: "org.apache.hadoop.hbase.thrift.ThriftServer",
}


@dataclass(frozen=True)
class ClusterOptions:
    """What the cluster consists of and how it is tuned (kept per home in data/cluster.json)."""

    regionservers: int = 3
    #: Thrift1 gateways and, as many again, Thrift2 gateways.
    gateways: int = 2
    datanodes: int = 2
    #: False: the HBase root on the local disk (`--no-hdfs`; see docs/hbase.md for what is lost).
    hdfs: bool = True
    #: Region replicas of the version tables; rowcast's services read it from client_settings().
    region_replication: int = 2
    #: Microseconds a gateway's TIMELINE get waits on the primary before asking secondaries.
    primary_call_timeout_us: int = 10_000
    #: ZooKeeper session of the region servers and the master (ms): see cluster_templates.py.
    zk_session_timeout_ms: int = 15_000
    #: Copies of hbase:meta (1: none); see cluster_templates.server_properties.
    meta_replicas: int = 2
    regionserver_heap: str = "768m"
    master_heap: str = "512m"
    gateway_heap: str = "320m"
    hdfs_heap: str = "256m"
    zookeeper_heap: str = "128m"

    def validate(self) -> None:
        if self.regionservers < 1 or self.gateways < 1 or self.datanodes < 1:
            raise HBaseError("a cluster needs at least one region server, gateway and datanode")
        if not 1 <= self.region_replication <= self.regionservers:
            raise HBaseError(
                f"region replication {self.region_replication} needs as many region servers "
                f"(have {self.regionservers}): replicas of a region never share a server"
            )
        if not 1 <= self.meta_replicas <= self.regionservers:
            raise HBaseError(f"meta replicas {self.meta_replicas} > {self.regionservers} servers")
        if not 2 * tpl.ZK_TICK_MS <= self.zk_session_timeout_ms <= 20 * tpl.ZK_TICK_MS:
            raise HBaseError(
                f"ZooKeeper session timeout must be {2 * tpl.ZK_TICK_MS}-{20 * tpl.ZK_TICK_MS} ms"
            )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClusterOptions:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def component_names(options: ClusterOptions) -> tuple[str, ...]:
    """Every process of a cluster with these options, in start order."""
    return tpl.component_names(
        options.regionservers, options.gateways, options.datanodes, options.hdfs
    )


def allocate_ports(
    settings: HBaseSettings,
    options: ClusterOptions,
    known: Mapping[str, Mapping[str, int]] | None = None,
    pick: Callable[[int], list[int]] = free_ports,
) -> dict[str, dict[str, int]]:
    """Ports of every process: those in `known` (a home's earlier choice) stay; the first
    gateways, ZooKeeper, the master and the first region server take the settings' ports (so
    `--thrift-port` and friends mean the same as for the standalone HBase); the rest are free
    ports picked now. No two roles share a port."""
    named = {
        (tpl.ZOOKEEPER, "client"): settings.zookeeper_port,
        (tpl.MASTER, "rpc"): settings.master_port,
        (f"{tpl.REGIONSERVER_PREFIX}1", "rpc"): settings.regionserver_port,
        (f"{tpl.THRIFT_PREFIX}1", "rpc"): settings.thrift_port,
        (f"{tpl.THRIFT2_PREFIX}1", "rpc"): settings.thrift2_port,
    }
    known = known or {}
    wanted = [(name, role) for name in component_names(options) for role in tpl.port_roles(name)]
    chosen: dict[tuple[str, str], int] = {}
    for name, role in wanted:
        if role in known.get(name, {}):
            chosen[(name, role)] = int(known[name][role])
    used = set(chosen.values())
    for key, port in named.items():
        if key in chosen or key not in wanted or port in used:
            continue
        chosen[key] = port
        used.add(port)
    missing = [key for key in wanted if key not in chosen]
    fresh = [port for port in pick(len(missing) + len(used)) if port not in used]
    if len(fresh) < len(missing):
        raise PortInUseError("could not find enough free ports")
    for key, port in zip(missing, fresh, strict=False):
        chosen[key] = port
    result: dict[str, dict[str, int]] = {}
    for name, role in wanted:
        result.setdefault(name, {})[role] = chosen[(name, role)]
    return result


@dataclass(frozen=True)
class ProcessStatus:
    """One JVM of the cluster."""

    name: str
    running: bool
    pid: int | None
    ports: Mapping[str, int]
    log: Path
    #: Resident memory in bytes (None when not running).
    rss_bytes: int | None = None


@dataclass(frozen=True)
class ClusterStatus:
    """A snapshot of the cluster: every process, and whether it serves right now."""

    home: Path
    options: ClusterOptions
    processes: tuple[ProcessStatus, ...]
    #: Every process runs, every region server has checked in, every gateway round-trips.
    ready: bool
    detail: str
    live_regionservers: tuple[str, ...] = ()
    profile: str = field(default=PROFILE)

    @property
    def any_running(self) -> bool:
        return any(p.running for p in self.processes)

    @property
    def state(self) -> Literal["ready", "not_running", "not_ready"]:
        if self.ready:
            return "ready"
        return "not_ready" if self.any_running else "not_running"

    def to_json(self) -> dict[str, Any]:
        return {
            "home": str(self.home),
            "profile": self.profile,
            "host": LOOPBACK,
            "state": self.state,
            "ready": self.ready,
            "detail": self.detail,
            "options": self.options.to_json(),
            "live_regionservers": list(self.live_regionservers),
            "components": {
                p.name: {
                    "running": p.running,
                    "pid": p.pid,
                    "ports": dict(p.ports),
                    "log": str(p.log),
                    "rss_bytes": p.rss_bytes,
                }
                for p in self.processes
            },
        }


def cluster_file(home: Path) -> Path:
    """Where a home records that it holds a cluster (options and ports)."""
    return Path(home).resolve() / "data" / "cluster.json"


def recorded_options(home: Path) -> ClusterOptions | None:
    """The options a home's cluster was created with, or None if the home holds no cluster."""
    try:
        data = json.loads(cluster_file(home).read_text())
        return ClusterOptions.from_json(data["options"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class ClusterHBase:
    """Provisions, starts, probes, signals and stops the processes of one cluster home."""

    def __init__(self, settings: HBaseSettings, options: ClusterOptions) -> None:
        options.validate()
        self.settings = replace(settings, home=Path(settings.home).resolve())
        self.options = options
        self.paths = Layout(self.settings.home)
        self.record = cluster_file(self.settings.home)
        self.jvms = JvmGroup(self.paths, component_names(options))
        self._layout: ClusterLayout | None = None

    def fetch(self) -> Path:
        """Resolve the HBase (and HDFS, ZooKeeper) classpath with Maven, once."""
        return fetch_classpath(self.paths)

    # ----------------------------------------------------------------------------- queries

    def components(self) -> tuple[str, ...]:
        return self.jvms.names

    def pids(self) -> dict[str, int]:
        return self.jvms.running()

    def is_running(self) -> bool:
        return bool(self.jvms.running())

    def layout(self) -> ClusterLayout:
        """Ports and directories (the recorded ones if this home has a cluster already)."""
        if self._layout is None:
            known = self._recorded_ports()
            ports = allocate_ports(self.settings, self.options, known)
            self._layout = ClusterLayout(
                data_dir=self.paths.data,
                ports=ports,
                regionservers=self.options.regionservers,
                gateways=self.options.gateways,
                datanodes=self.options.datanodes,
                hdfs=self.options.hdfs,
                primary_call_timeout_us=self.options.primary_call_timeout_us,
                zk_session_timeout_ms=self.options.zk_session_timeout_ms,
                meta_replicas=self.options.meta_replicas,
            )
        return self._layout

    def _recorded_ports(self) -> dict[str, dict[str, int]]:
        try:
            ports = json.loads(self.record.read_text())["ports"]
            return {
                str(n): {str(r): int(p) for r, p in roles.items()} for n, roles in ports.items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}

    def ports(self, component: str) -> dict[str, int]:
        return dict(self.layout().ports[component])

    def regionserver_port(self, component: str) -> int:
        """The RPC port of "regionserver-K": hbase:meta names servers "localhost,PORT,START"."""
        if not component.startswith(tpl.REGIONSERVER_PREFIX) or component not in self.components():
            raise HBaseError(f"no region server named {component!r}")
        return self.layout().port(component)

    def regionserver_at(self, port: int) -> str | None:
        """The region server component listening on RPC `port` (the reverse of the above)."""
        for name in self.components():
            if name.startswith(tpl.REGIONSERVER_PREFIX) and self.layout().port(name) == port:
                return name
        return None

    def gateways(self) -> tuple[str, ...]:
        """ "127.0.0.1:port" of every Thrift1 gateway."""
        return tuple(
            f"{LOOPBACK}:{self.layout().port(n)}"
            for n in self.components()
            if n.startswith(tpl.THRIFT_PREFIX)
        )

    def thrift2_gateways(self) -> tuple[str, ...]:
        return tuple(
            f"{LOOPBACK}:{self.layout().port(n)}"
            for n in self.components()
            if n.startswith(tpl.THRIFT2_PREFIX)
        )

    def client_settings(self) -> HBaseSettings:
        """Settings a rowcast service uses to reach this cluster: every gateway, the first one
        also as host/thrift_port/thrift2_port, its ZooKeeper, and the region replication."""
        lay = self.layout()
        return replace(
            self.settings,
            host=LOOPBACK,
            thrift_port=lay.port(f"{tpl.THRIFT_PREFIX}1"),
            thrift2_port=lay.port(f"{tpl.THRIFT2_PREFIX}1"),
            zookeeper_port=lay.port(tpl.ZOOKEEPER, "client"),
            master_port=lay.port(tpl.MASTER),
            regionserver_port=lay.port(f"{tpl.REGIONSERVER_PREFIX}1"),
            thrift_gateways=self.gateways(),
            thrift2_gateways=self.thrift2_gateways(),
            region_replication=self.options.region_replication,
        )

    def live_regionservers(self, timeout_s: float = 5.0) -> tuple[str, ...] | None:
        """Region servers checked in with ZooKeeper ("localhost,PORT,STARTCODE"), None if
        ZooKeeper cannot be reached."""
        return _zk_children(self.layout().port(tpl.ZOOKEEPER, "client"), "/hbase/rs", timeout_s)

    def status(self) -> ClusterStatus:
        """Every process and a fresh readiness check."""
        running = self.jvms.running()
        procs = tuple(
            ProcessStatus(
                name=name,
                running=name in running,
                pid=running.get(name),
                ports=self.ports(name),
                log=self.paths.log_file(name),
                rss_bytes=_rss(running[name]) if name in running else None,
            )
            for name in self.components()
        )
        home = self.paths.home
        if not running:
            return ClusterStatus(home, self.options, procs, False, "not running")
        missing = [name for name in self.components() if name not in running]
        live = self.live_regionservers() or ()
        if missing:
            detail = f"not running: {', '.join(missing)}"
            return ClusterStatus(home, self.options, procs, False, detail, live)
        result = self._probe(live, budget_s=10.0)
        return ClusterStatus(home, self.options, procs, result.ok, result.detail, live)

    def ready(self) -> bool:
        return self.status().ready

    def _probe(self, live: Sequence[str] | None, budget_s: float) -> ProbeResult:
        """Every region server checked in, then a round trip through every gateway."""
        started = time.monotonic()
        if live is None:
            return ProbeResult(False, "ZooKeeper not reachable")
        if len(live) < self.options.regionservers:
            return ProbeResult(
                False, f"{len(live)} of {self.options.regionservers} region servers checked in"
            )
        timeout_s = max(1.0, min(self.settings.timeout_s, budget_s))
        for address in self.gateways():
            result = probe(LOOPBACK, int(address.rsplit(":", 1)[1]), timeout_s)
            if not result.ok:
                return result
        for address in self.thrift2_gateways():
            result = probe_admin(LOOPBACK, int(address.rsplit(":", 1)[1]), timeout_s)
            if not result.ok:
                return result
        elapsed = time.monotonic() - started
        detail = (
            f"{len(live)} region servers; put/get via {len(self.gateways())} Thrift1 and "
            f"tableExists via {len(self.thrift2_gateways())} Thrift2 gateways ok "
            f"in {elapsed * 1000:.0f} ms"
        )
        return ProbeResult(True, detail, elapsed)

    # ----------------------------------------------------------------------------- start

    def start(self, timeout_s: float = 300.0) -> bool:
        """Start whatever is not running, tier by tier, and wait until the cluster serves.

        Returns False if every process was already running. On failure everything this call
        started is stopped again and HBaseStartError carries the log lines that say why.
        """
        java = java_or_fail()
        self.paths.make_dirs()
        deadline = time.monotonic() + timeout_s
        with self.jvms.start_lock():
            self._refuse_standalone()
            running = self.jvms.running()
            missing = [name for name in self.components() if name not in running]
            if not missing:
                self._wait_ready(deadline, started=[])
                return False
            self._check_ports(missing)
            classpath = fetch_classpath(self.paths).read_text().strip()
            self._write_conf()
            self._record()
            started: list[str] = []
            try:
                tiers = self._tiers()
                for tier in tiers:
                    for name in tier:
                        if name == tpl.NAMENODE:
                            # ZooKeeper (first in the tier) starts meanwhile.
                            self._format_namenode(java, classpath)
                        if name in missing:
                            self.jvms.launch(name, self.command(name, java, classpath))
                            started.append(name)
                    if tier is tiers[0]:
                        self._wait_storage(deadline, started)
                self._wait_ready(deadline, started)
            except BaseException:
                # Also on Ctrl-C: never leave half a cluster behind that nobody asked for.
                for tier in reversed(self._tiers()):
                    self.jvms.terminate([n for n in tier if n in started], _QUICK_GRACE_S)
                if not self.jvms.running():
                    self.paths.state.unlink(missing_ok=True)
                raise
            return True

    def _tiers(self) -> list[list[str]]:
        """Start order: storage (ZooKeeper, HDFS), then HBase servers, then the gateways."""
        names = self.components()
        storage = [n for n in names if n in (tpl.ZOOKEEPER, tpl.NAMENODE)
                   or n.startswith(tpl.DATANODE_PREFIX)]  # fmt: skip
        servers = [n for n in names if n == tpl.MASTER or n.startswith(tpl.REGIONSERVER_PREFIX)]
        gateways = [n for n in names if n not in storage and n not in servers]
        return [storage, servers, gateways]

    def _refuse_standalone(self) -> None:
        standalone = self.jvms.marked_processes(["thrift", "thrift2"])
        if standalone:
            raise HBaseError(
                f"a standalone HBase runs in {self.paths.home}; stop it first (rowcast hbase stop)"
            )

    def _check_ports(self, names: Sequence[str]) -> None:
        taken = []
        for name in names:
            for role, port in self.ports(name).items():
                if not port_is_free(port):
                    holder = port_holder(port)
                    by = f" by {holder}" if holder else ""
                    taken.append(f"  {name} {role} port {port} is in use{by}")
        if taken:
            raise PortInUseError(
                "cannot start the HBase cluster, ports taken:\n" + "\n".join(taken)
                + f"\n(ports of this home are recorded in {self.record})"
            )  # fmt: skip

    def _record(self) -> None:
        lay = self.layout()
        text = json.dumps(
            {"profile": PROFILE, "options": self.options.to_json(),
             "ports": {n: dict(r) for n, r in lay.ports.items()}},
            indent=2,
        )  # fmt: skip
        processes.write_atomic(self.record, text + "\n")
        processes.write_atomic(self.paths.state, text + "\n")

    def conf_dir(self, component: str) -> Path:
        return self.paths.conf / component

    def _write_conf(self) -> None:
        lay = self.layout()
        for name in self.components():
            conf = self.conf_dir(name)
            conf.mkdir(parents=True, exist_ok=True)
            processes.write_atomic(conf / "log4j2.properties", render_log4j2())
            processes.write_atomic(conf / "core-site.xml", tpl.core_site(lay))
            processes.write_atomic(conf / "hdfs-site.xml", tpl.hdfs_site(lay, name))
            processes.write_atomic(conf / "hbase-site.xml", tpl.hbase_site(lay, name))
            if name == tpl.ZOOKEEPER:
                processes.write_atomic(conf / "zoo.cfg", tpl.zoo_cfg(lay))
            if name == tpl.NAMENODE or name.startswith(tpl.DATANODE_PREFIX):
                # Hadoop's web server looks its (unused) web apps up on the classpath; empty
                # directories satisfy it (hadoop-hdfs on Maven Central ships without them).
                for app in ("hdfs", "datanode", "static"):
                    (conf / "webapps" / app / "WEB-INF").mkdir(parents=True, exist_ok=True)

    def _format_namenode(self, java: str, classpath: str) -> None:
        """Format HDFS once, the first time this home starts."""
        if (self.paths.data / "namenode" / "current" / "VERSION").exists():
            return
        log = self.paths.logs / "namenode-format.log"
        argv = self.command(tpl.NAMENODE, java, classpath, ["-format", "-nonInteractive"])
        with open(log, "wb") as out:
            done = _run_to_log(argv, out, cwd=self.paths.home, timeout_s=180.0)
        if done != 0:
            tail = [processes.clip(line) for line in processes.tail_lines(log, 30)]
            raise HBaseStartError(f"formatting HDFS failed (exit {done})", "\n".join(tail))

    def command(
        self, name: str, java: str, classpath: str, args: Sequence[str] | None = None
    ) -> list[str]:
        """The JVM command line of one process."""
        o = self.options
        lay = self.layout()
        if name == tpl.ZOOKEEPER:
            heap, main = o.zookeeper_heap, _MAIN[tpl.ZOOKEEPER]
            default_args = [str(self.conf_dir(name) / "zoo.cfg")]
        elif name == tpl.NAMENODE:
            heap, main, default_args = o.hdfs_heap, _MAIN[tpl.NAMENODE], []
        elif name == tpl.MASTER:
            heap, main, default_args = o.master_heap, _MAIN[tpl.MASTER], ["start"]
        else:
            prefixes = (tpl.DATANODE_PREFIX, tpl.REGIONSERVER_PREFIX, tpl.THRIFT2_PREFIX,
                        tpl.THRIFT_PREFIX)  # fmt: skip
            prefix = next(p for p in prefixes if name.startswith(p))
            main = _MAIN[prefix]
            if prefix == tpl.DATANODE_PREFIX:
                heap, default_args = o.hdfs_heap, []
            elif prefix == tpl.REGIONSERVER_PREFIX:
                heap, default_args = o.regionserver_heap, ["start"]
            else:
                # Buffered transport + binary protocol: what happybase and rowcast speak.
                heap = o.gateway_heap
                default_args = ["-b", LOOPBACK, "-p", str(lay.port(name)), "-threadpool", "start"]
        extra = ["-Djava.net.preferIPv4Stack=true", "-Dzookeeper.admin.enableServer=false"]
        if name in (tpl.ZOOKEEPER, tpl.NAMENODE) or name.startswith(tpl.DATANODE_PREFIX):
            # Small, lightly loaded JVMs: the client compiler and one GC thread start them
            # faster and leave the two cores to the region servers and gateways.
            extra += ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
        return java_command(
            java, heap, self.conf_dir(name), self.jvms.markers(name), classpath, main,
            default_args if args is None else args, extra,
        )  # fmt: skip

    def _wait_storage(self, deadline: float, started: Sequence[str]) -> None:
        """ZooKeeper answers and HDFS has every datanode and is out of safe mode."""
        zk_port = self.layout().port(tpl.ZOOKEEPER, "client")
        while True:
            self._check_alive(started, "during start")
            zk_ok = _zk_children(zk_port, "/", 2.0) is not None
            hdfs_ok, why = self._hdfs_ready() if self.options.hdfs else (True, "")
            if zk_ok and hdfs_ok:
                return
            if time.monotonic() >= deadline:
                raise HBaseStartError(
                    "storage not ready before the start timeout: "
                    + ("ZooKeeper does not answer" if not zk_ok else why),
                    self.jvms.log_excerpt(self._tiers()[0]),
                )
            time.sleep(0.5)

    def _hdfs_ready(self) -> tuple[bool, str]:
        health = hdfs_health(self.layout().port(tpl.NAMENODE, "http"))
        if health is None:
            return False, "NameNode does not answer"
        live, safemode = health
        if live < self.options.datanodes:
            return False, f"{live} of {self.options.datanodes} datanodes live"
        if safemode:
            return False, f"HDFS in safe mode: {safemode}"
        return True, f"{live} datanodes live"

    def _check_alive(self, started: Sequence[str], verb: str) -> None:
        running = self.jvms.running()
        for name in started:
            if name not in running:
                code = self.jvms.exit_code(name)
                how = f"exited with code {code}" if code is not None else "is not running"
                raise HBaseStartError(f"{name} {how} {verb}", self.jvms.log_excerpt([name]))

    def _wait_ready(self, deadline: float, started: Sequence[str]) -> None:
        last = "no probe yet"
        while True:
            self._check_alive(started, "during start")
            self._check_alive(self.components(), "while waiting for readiness")
            result = self._probe(self.live_regionservers(), budget_s=deadline - time.monotonic())
            if result.ok:
                return
            last = result.detail
            if time.monotonic() >= deadline:
                raise HBaseStartError(
                    f"HBase cluster not ready before the start timeout (last probe: {last})",
                    self.jvms.log_excerpt([tpl.MASTER, *self.components()]),
                )
            time.sleep(1.0)

    # ----------------------------------------------------------------------------- faults

    def kill(self, component: str, sig: int) -> None:
        """Send `sig` to one process (SIGKILL, SIGSTOP, SIGCONT, SIGTERM); the pid file stays."""
        if component not in self.components():
            raise HBaseError(f"no component {component!r}; have {', '.join(self.components())}")
        self.jvms.signal(component, sig)

    def restart(self, component: str, timeout_s: float = 120.0) -> None:
        """Start one process that died (or was killed) and wait until it serves again."""
        if component not in self.components():
            raise HBaseError(f"no component {component!r}; have {', '.join(self.components())}")
        java = java_or_fail()
        deadline = time.monotonic() + timeout_s
        with self.jvms.start_lock():
            pid = self.jvms.running().get(component)
            if pid is not None and not processes.wait_gone([pid], 10.0):
                raise HBaseError(f"{component} still runs (pid {pid}); kill it first")
            classpath = fetch_classpath(self.paths).read_text().strip()
            self._check_ports([component])
            self._write_conf()
            before = set(self.live_regionservers() or ())
            self.jvms.launch(component, self.command(component, java, classpath))
            while True:
                self._check_alive([component], "during restart")
                if self._serves(component, before):
                    return
                if time.monotonic() >= deadline:
                    raise HBaseStartError(
                        f"{component} not serving {timeout_s:.0f} s after restart",
                        self.jvms.log_excerpt([component]),
                    )
                time.sleep(0.5)

    def _serves(self, component: str, before: set[str]) -> bool:
        lay = self.layout()
        if component == tpl.ZOOKEEPER:
            return _zk_children(lay.port(component, "client"), "/", 2.0) is not None
        if component == tpl.NAMENODE or component.startswith(tpl.DATANODE_PREFIX):
            return self._hdfs_ready()[0]
        if component == tpl.MASTER:
            zk = lay.port(tpl.ZOOKEEPER, "client")
            return _zk_exists(zk, "/hbase/master") and probe(LOOPBACK, lay.port(
                f"{tpl.THRIFT_PREFIX}1"), 5.0).ok  # fmt: skip
        if component.startswith(tpl.REGIONSERVER_PREFIX):
            port = lay.port(component)
            live = self.live_regionservers() or ()
            return any(_server_port(s) == port and s not in before for s in live)
        if component.startswith(tpl.THRIFT2_PREFIX):
            return probe_admin(LOOPBACK, lay.port(component), 5.0).ok
        return probe(LOOPBACK, lay.port(component), 5.0).ok

    # ----------------------------------------------------------------------------- stop

    def stop(self, grace_s: float = 60.0) -> bool:
        """Gateways, then HBase servers, then HDFS, then ZooKeeper (SIGTERM, SIGKILL after the
        grace period); then anything else carrying this home's marker. Idempotent.

        Returns False if nothing was running. Raises HBaseStopError if a JVM survives SIGKILL.
        """
        was_running = bool(self.jvms.running())
        storage, servers, gateways = self._tiers()
        quick = min(grace_s, _QUICK_GRACE_S)
        self.jvms.terminate(gateways, quick)
        self.jvms.terminate(servers, grace_s)
        self.jvms.terminate([n for n in storage if n != tpl.ZOOKEEPER], quick)
        self.jvms.terminate([tpl.ZOOKEEPER], quick)
        stragglers, left = self.jvms.kill_stragglers()
        if left:
            raise HBaseStopError(f"processes survived SIGKILL: pids {left}")
        self.paths.state.unlink(missing_ok=True)
        return was_running or bool(stragglers)


# --------------------------------------------------------------------------------- helpers


def _run_to_log(argv: Sequence[str], out: Any, cwd: Path, timeout_s: float) -> int:
    try:
        return subprocess.run(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=cwd, timeout=timeout_s, check=False,
        ).returncode  # fmt: skip
    except subprocess.TimeoutExpired:
        return -int(signal.SIGKILL)


def hdfs_health(http_port: int, timeout_s: float = 2.0) -> tuple[int, str] | None:
    """(live datanodes, safe mode message or "") from the NameNode's /jmx; None if it does not
    answer."""
    url = f"http://{LOOPBACK}:{http_port}/jmx?qry=Hadoop:service=NameNode,name=NameNodeInfo"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            beans = json.loads(response.read())["beans"]
        info = beans[0]
        live = len(json.loads(info["LiveNodes"]))
        return live, str(info.get("Safemode", ""))
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def _server_port(server: str) -> int | None:
    """Port of an HBase server name, "host,port,startcode" or "host:port"."""
    parts = server.replace(":", ",").split(",")
    try:
        return int(parts[1])
    except (IndexError, ValueError):
        return None


#: kazoo logs every refused connection; a probe that fails is an answer, not news.
_QUIET = logging.getLogger("rowcast_dev.hbase.cluster.kazoo")
_QUIET.setLevel(logging.CRITICAL)
_QUIET.propagate = False


def _zk_client(port: int, timeout_s: float) -> KazooClient:
    client = KazooClient(
        hosts=f"{LOOPBACK}:{port}", timeout=timeout_s, connection_retry=None, logger=_QUIET
    )
    client.start(timeout=timeout_s)
    return client


def _zk_children(port: int, path: str, timeout_s: float) -> tuple[str, ...] | None:
    """Children of a znode (empty if it does not exist), None if ZooKeeper does not answer."""
    try:
        client = _zk_client(port, timeout_s)
    except Exception:  # kazoo raises its own timeout types; any failure is "not reachable"
        return None
    try:
        if client.exists(path) is None:
            return ()
        return tuple(sorted(client.get_children(path)))
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):
            client.stop()
            client.close()


def _zk_exists(port: int, path: str) -> bool:
    try:
        client = _zk_client(port, 2.0)
    except Exception:
        return False
    try:
        return client.exists(path) is not None
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            client.stop()
            client.close()


def _rss(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def open_hbase(settings: HBaseSettings) -> StandaloneHBase | ClusterHBase:
    """The HBase of `settings.home`: the cluster it was created as, else the standalone one."""
    options = recorded_options(settings.home)
    if options is None:
        return StandaloneHBase(settings)
    return ClusterHBase(settings, options)


def env_exports(settings: HBaseSettings) -> dict[str, str]:
    """The ROWCAST_* variables that point rowcast's services at the HBase `settings` describe
    (`Settings.from_env` reads them back)."""
    return {
        "ROWCAST_HOME": str(settings.home),
        "ROWCAST_HBASE_HOST": settings.host,
        "ROWCAST_HBASE_THRIFT_PORT": str(settings.thrift_port),
        "ROWCAST_HBASE_THRIFT2_PORT": str(settings.thrift2_port),
        "ROWCAST_HBASE_ZK_PORT": str(settings.zookeeper_port),
        "ROWCAST_HBASE_MASTER_PORT": str(settings.master_port),
        "ROWCAST_HBASE_RS_PORT": str(settings.regionserver_port),
        "ROWCAST_HBASE_GATEWAYS": ",".join(settings.thrift_addresses()),
        "ROWCAST_HBASE_THRIFT2_GATEWAYS": ",".join(settings.thrift2_addresses()),
        "ROWCAST_HBASE_REGION_REPLICATION": str(settings.region_replication),
    }
