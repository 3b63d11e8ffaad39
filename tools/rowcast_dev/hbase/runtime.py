"""The embedded standalone HBase: three JVMs under one home directory.

The home's layout and the process machinery (pid files, the `-Drowcast.home` marker, logs)
are in jvm.py, shared with the cluster profile (cluster.py). Linux only (reads /proc).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal

from rowcast.config import HBaseSettings
from rowcast_dev.hbase import processes
from rowcast_dev.hbase.jvm import (
    JVM_FLAGS,
    FetchError,
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
from rowcast_dev.hbase.ports import port_holder, port_is_free
from rowcast_dev.hbase.probe import ProbeResult, probe, probe_admin
from rowcast_dev.hbase.templates import LOOPBACK, render_hbase_site, render_log4j2

Component = Literal["master", "thrift", "thrift2"]
#: Start order is this order; stop order is gateways first, master last.
COMPONENTS: Final[tuple[Component, ...]] = ("master", "thrift", "thrift2")

#: The Thrift2 gateway only serves table administration; it needs little memory.
THRIFT2_HEAP: Final = "256m"
#: Gateways stop in a second or two; they get at most this long before SIGKILL.
_GATEWAY_GRACE_S: Final = 20.0

__all__ = [
    "COMPONENTS",
    "JVM_FLAGS",
    "Component",
    "ComponentStatus",
    "FetchError",
    "HBaseError",
    "HBaseStartError",
    "HBaseStatus",
    "HBaseStopError",
    "PortInUseError",
    "StandaloneHBase",
    "ports_of",
]


@dataclass(frozen=True)
class ComponentStatus:
    """One JVM: whether it runs, its pid and the ports it serves."""

    name: Component
    running: bool
    pid: int | None
    ports: Mapping[str, int]
    log: Path


@dataclass(frozen=True)
class HBaseStatus:
    """A snapshot of the embedded HBase: processes, ports and the readiness probe's verdict."""

    home: Path
    host: str
    ports: Mapping[str, int]
    components: tuple[ComponentStatus, ...]
    #: All three JVMs run and a put/get round trip through Thrift1 just succeeded.
    ready: bool
    #: What the probe saw (or why it was not run).
    detail: str

    @property
    def any_running(self) -> bool:
        return any(c.running for c in self.components)

    @property
    def state(self) -> Literal["ready", "not_running", "not_ready"]:
        if self.ready:
            return "ready"
        return "not_ready" if self.any_running else "not_running"

    def to_json(self) -> dict[str, Any]:
        return {
            "home": str(self.home),
            "host": self.host,
            "state": self.state,
            "ready": self.ready,
            "detail": self.detail,
            "ports": dict(self.ports),
            "components": {
                c.name: {
                    "running": c.running,
                    "pid": c.pid,
                    "ports": dict(c.ports),
                    "log": str(c.log),
                }
                for c in self.components
            },
        }


def ports_of(settings: HBaseSettings) -> dict[str, int]:
    """Every port the embedded HBase uses, by role."""
    return {
        "thrift": settings.thrift_port,
        "thrift2": settings.thrift2_port,
        "zookeeper": settings.zookeeper_port,
        "master": settings.master_port,
        "regionserver": settings.regionserver_port,
    }


#: Which ports each JVM listens on.
_COMPONENT_PORTS: Final[Mapping[Component, tuple[str, ...]]] = {
    "master": ("zookeeper", "master", "regionserver"),
    "thrift": ("thrift",),
    "thrift2": ("thrift2",),
}
#: How a user changes each port (for error messages).
_PORT_KNOBS: Final[Mapping[str, str]] = {
    "thrift": "--thrift-port / ROWCAST_HBASE_THRIFT_PORT",
    "thrift2": "--thrift2-port / ROWCAST_HBASE_THRIFT2_PORT",
    "zookeeper": "--zk-port / ROWCAST_HBASE_ZK_PORT",
    "master": "--master-port / ROWCAST_HBASE_MASTER_PORT",
    "regionserver": "--regionserver-port / ROWCAST_HBASE_RS_PORT",
}


class StandaloneHBase:
    """Provisions, starts, probes and stops the embedded standalone HBase (three JVMs)."""

    def __init__(self, settings: HBaseSettings) -> None:
        self.settings = replace(settings, home=Path(settings.home).resolve())
        self.paths = Layout(self.settings.home)
        self.jvms = JvmGroup(self.paths, COMPONENTS)

    # ----------------------------------------------------------------------------- fetch

    def fetch(self) -> Path:
        """Resolve the HBase classpath with Maven (once; again only if the pom changed).

        Returns the file holding the classpath. Jars land in ~/.m2, so a re-resolve is quick.
        """
        return fetch_classpath(self.paths)

    # ----------------------------------------------------------------------------- queries

    def effective_settings(self) -> HBaseSettings:
        """The settings of the running instance if there is one, else the requested ones.

        Ports are fixed when HBase starts; a later call with other ports (or none given) must
        still probe and report the ports that are actually in use.
        """
        if not self._running():
            return self.settings
        try:
            recorded = json.loads(self.paths.state.read_text())["ports"]
            return replace(
                self.settings,
                thrift_port=int(recorded["thrift"]),
                thrift2_port=int(recorded["thrift2"]),
                zookeeper_port=int(recorded["zookeeper"]),
                master_port=int(recorded["master"]),
                regionserver_port=int(recorded["regionserver"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return self.settings

    def is_running(self) -> bool:
        """True if any of the three JVMs is alive."""
        return bool(self._running())

    def pids(self) -> dict[Component, int]:
        """Pids of the JVMs that are alive, by component."""
        return self._running()

    def ready(self) -> bool:
        """One readiness round trip (never raises)."""
        running = self._running()
        return len(running) == len(COMPONENTS) and self._probe().ok

    def status(self) -> HBaseStatus:
        """Processes, ports and a fresh readiness probe."""
        eff = self.effective_settings()
        ports = ports_of(eff)
        running = self._running()
        components = tuple(
            ComponentStatus(
                name=name,
                running=name in running,
                pid=running.get(name),
                ports={role: ports[role] for role in _COMPONENT_PORTS[name]},
                log=self.paths.log_file(name),
            )
            for name in COMPONENTS
        )
        missing = [name for name in COMPONENTS if name not in running]
        if not running:
            return HBaseStatus(self.paths.home, LOOPBACK, ports, components, False, "not running")
        result = self._probe(eff) if "thrift" in running else None
        if missing:
            detail = f"not running: {', '.join(missing)}"
            if result is not None:
                detail += f"; probe: {result.detail}"
            return HBaseStatus(self.paths.home, LOOPBACK, ports, components, False, detail)
        assert result is not None
        detail = result.detail + (f" in {result.elapsed_s * 1000:.0f} ms" if result.ok else "")
        return HBaseStatus(self.paths.home, LOOPBACK, ports, components, result.ok, detail)

    def _probe(self, settings: HBaseSettings | None = None, budget_s: float = 10.0) -> ProbeResult:
        """Readiness: a Thrift1 put/get round trip, then a Thrift2 admin call."""
        eff = settings or self.effective_settings()
        timeout_s = max(1.0, min(eff.timeout_s, budget_s))
        data = probe(LOOPBACK, eff.thrift_port, timeout_s)
        if not data.ok:
            return data
        admin = probe_admin(LOOPBACK, eff.thrift2_port, timeout_s)
        elapsed = data.elapsed_s + admin.elapsed_s
        if not admin.ok:
            return ProbeResult(False, admin.detail, elapsed)
        return ProbeResult(True, f"{data.detail}; {admin.detail}", elapsed)

    # ----------------------------------------------------------------------------- start

    def start(self, timeout_s: float = 180.0) -> bool:
        """Start whatever is not running and wait until a round trip succeeds.

        Returns False if all three JVMs were already running (nothing started), True otherwise.
        On failure everything this call started is stopped again and HBaseStartError carries
        the log lines that explain it. Concurrent starts of one home are serialised by a lock.
        """
        java = java_or_fail()
        self.paths.make_dirs()
        with self.jvms.start_lock():
            running = self._running()
            missing = [name for name in COMPONENTS if name not in running]
            if not missing:
                self._wait_ready(time.monotonic() + timeout_s, started=[])
                return False
            eff = self.effective_settings() if running else self.settings
            # Ports before fetch: a busy port should fail in milliseconds, not after Maven.
            self._check_ports(eff, missing)
            classpath = self.fetch().read_text().strip()
            self._write_conf(eff)
            if not running:
                processes.write_atomic(
                    self.paths.state, json.dumps({"ports": ports_of(eff)}) + "\n"
                )
            started: list[Component] = []
            try:
                for name in missing:
                    self._launch(java, name, eff, classpath)
                    started.append(name)
                self._wait_ready(time.monotonic() + timeout_s, started)
            except BaseException:
                # Also on Ctrl-C: never leave half a cluster behind that nobody asked for.
                self._terminate(started, grace_s=_GATEWAY_GRACE_S)
                if not self._running():
                    self.paths.state.unlink(missing_ok=True)
                raise
            return True

    def _check_ports(self, settings: HBaseSettings, components: Sequence[Component]) -> None:
        ports = ports_of(settings)
        by_port: dict[int, list[str]] = {}
        for role, port in ports.items():
            by_port.setdefault(port, []).append(role)
        clashes = [f"{' and '.join(roles)} both use {port}" for port, roles in by_port.items()
                   if len(roles) > 1]  # fmt: skip
        if clashes:
            raise PortInUseError("cannot start HBase: " + "; ".join(clashes))
        taken = []
        for name in components:
            for role in _COMPONENT_PORTS[name]:
                if not port_is_free(ports[role]):
                    holder = port_holder(ports[role])
                    by = f" by {holder}" if holder else ""
                    taken.append(
                        f"  {role} port {ports[role]} is in use{by}; "
                        f"choose another with {_PORT_KNOBS[role]}"
                    )
        if taken:
            raise PortInUseError("cannot start HBase, ports taken:\n" + "\n".join(taken))

    def _write_conf(self, settings: HBaseSettings) -> None:
        processes.write_atomic(
            self.paths.conf / "hbase-site.xml", render_hbase_site(settings, self.paths.data)
        )
        processes.write_atomic(self.paths.conf / "log4j2.properties", render_log4j2())

    def command(
        self, name: Component, java: str, settings: HBaseSettings, classpath: str
    ) -> list[str]:
        """The JVM command line of one component."""
        heap = {"master": settings.master_heap, "thrift": settings.thrift_heap,
                "thrift2": THRIFT2_HEAP}[name]  # fmt: skip
        main, args = {
            # Standalone: master, regionserver and ZooKeeper in this one JVM.
            "master": ("org.apache.hadoop.hbase.master.HMaster", ["start"]),
            # Thrift1, buffered transport + binary protocol: what happybase speaks.
            "thrift": ("org.apache.hadoop.hbase.thrift.ThriftServer",
                       ["-b", LOOPBACK, "-p", str(settings.thrift_port), "-threadpool", "start"]),
            # Thrift2: table administration (pre-split creation) that Thrift1 lacks.
            "thrift2": ("org.apache.hadoop.hbase.thrift2.ThriftServer",
                        ["-b", LOOPBACK, "-p", str(settings.thrift2_port), "-threadpool", "start"]),
        }[name]  # fmt: skip
        conf = self.paths.conf
        return java_command(java, heap, conf, self.jvms.markers(name), classpath, main, args)

    def _launch(self, java: str, name: Component, settings: HBaseSettings, classpath: str) -> None:
        self.jvms.launch(name, self.command(name, java, settings, classpath))

    def _wait_ready(self, deadline: float, started: Sequence[Component]) -> None:
        last = "no probe yet"
        while True:
            running = self._running()
            for name in COMPONENTS:
                if name not in running:
                    code = self.jvms.exit_code(name)
                    how = f"exited with code {code}" if code is not None else "is not running"
                    verb = "during start" if name in started else "while waiting for readiness"
                    raise HBaseStartError(f"{name} {how} {verb}", self.log_excerpt([name]))
            # A probe blocks while the master is still coming up; never past the deadline.
            result = self._probe(budget_s=deadline - time.monotonic())
            if result.ok:
                return
            last = result.detail
            if time.monotonic() >= deadline:
                raise HBaseStartError(
                    f"HBase not ready before the start timeout (last probe: {last})",
                    self.log_excerpt(list(COMPONENTS)),
                )
            time.sleep(1.0)

    # ----------------------------------------------------------------------------- stop

    def stop(self, grace_s: float = 60.0) -> bool:
        """SIGTERM gateways then master, SIGKILL after the grace period; idempotent.

        Returns False if nothing was running. Raises HBaseStopError if a JVM survives SIGKILL.
        """
        was_running = bool(self._running())
        self._terminate(["thrift", "thrift2"], grace_s=min(grace_s, _GATEWAY_GRACE_S))
        self._terminate(["master"], grace_s=grace_s)
        # Anything still carrying our marker (a lost pid file, a racing second copy) goes too.
        stragglers, left = self.jvms.kill_stragglers()
        if left:
            raise HBaseStopError(f"processes survived SIGKILL: pids {left}")
        self.paths.state.unlink(missing_ok=True)
        return was_running or bool(stragglers)

    def kill(self, component: Component, sig: int) -> None:
        """Send `sig` to one JVM (for fault tests); the pid file stays, as after a crash."""
        self.jvms.signal(component, sig)

    def _terminate(self, names: Sequence[Component], grace_s: float) -> None:
        self.jvms.terminate(names, grace_s)

    def _running(self) -> dict[Component, int]:
        running = self.jvms.running()
        return {name: running[name] for name in COMPONENTS if name in running}

    # ----------------------------------------------------------------------------- logs

    def log_excerpt(self, names: Sequence[Component], limit: int = 40) -> str:
        """The log lines most likely to explain a failure: errors first, then the tail of the
        first named log (for a timeout, the master's)."""
        return self.jvms.log_excerpt(names, limit)
