"""The embedded standalone HBase: three JVMs under one home directory.

Layout of `<home>` (all created on demand)::

    classpath.txt          Maven-resolved classpath (+ classpath.txt.sha256 of the pom it came from)
    conf/                  hbase-site.xml and log4j2.properties, re-rendered on every start
    data/                  HBase root dir, ZooKeeper data, tmp
    logs/<component>.log   stdout+stderr of each JVM (the previous run's kept as .log.1)
    run/<component>.pid    pid files; run/state.json the ports the running instance uses

Every JVM carries `-Drowcast.home=<home> -Drowcast.component=<name>` on its command line. That
marker, not the pid file alone, is what identifies "our" process: a stale pid file whose pid was
reused by something else is ignored, and `stop` also finds JVMs whose pid file was lost.
Linux only (reads /proc).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

from rowcast.config import HBaseSettings
from rowcast_dev.hbase import processes
from rowcast_dev.hbase.ports import port_holder, port_is_free
from rowcast_dev.hbase.probe import ProbeResult, probe, probe_admin
from rowcast_dev.hbase.templates import LOOPBACK, render_hbase_site, render_log4j2

Component = Literal["master", "thrift", "thrift2"]
#: Start order is this order; stop order is gateways first, master last.
COMPONENTS: Final[tuple[Component, ...]] = ("master", "thrift", "thrift2")

#: Needed by HBase 2.6 (netty, unsafe, Hadoop's Kerberos/DNS helpers) on JDK 17.
JVM_FLAGS: Final[tuple[str, ...]] = (
    "-Dorg.apache.hbase.thirdparty.io.netty.tryReflectionSetAccessible=true",
    "--add-modules", "jdk.unsupported",
    "--add-opens", "java.base/java.io=ALL-UNNAMED",
    "--add-opens", "java.base/java.nio=ALL-UNNAMED",
    "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens", "java.base/java.util=ALL-UNNAMED",
    "--add-opens", "java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports", "java.security.jgss/sun.security.krb5=ALL-UNNAMED",
    "--add-exports", "java.base/sun.net.dns=ALL-UNNAMED",
    "--add-exports", "java.base/sun.net.util=ALL-UNNAMED",
)  # fmt: skip

#: The Thrift2 gateway only serves table administration; it needs little memory.
THRIFT2_HEAP: Final = "256m"
#: Gateways stop in a second or two; they get at most this long before SIGKILL.
_GATEWAY_GRACE_S: Final = 20.0
#: How long after SIGKILL we wait for the kernel to reap a process before giving up.
_KILL_WAIT_S: Final = 10.0
_LOG_LINES: Final = 40
_STACK_FRAME = re.compile(r"\s+(at |\.\.\. \d+ more)")
_DIGITS = re.compile(r"\d+")
_INTERESTING = re.compile(r"\bERROR\b|\bFATAL\b|Exception|Caused by|\bError\b")


class HBaseError(Exception):
    """Anything that went wrong managing the embedded HBase (message is for humans)."""


class FetchError(HBaseError):
    """The HBase classpath could not be resolved."""


class PortInUseError(HBaseError):
    """A port the embedded HBase needs is taken by another process."""


class HBaseStopError(HBaseError):
    """A process of ours survived SIGKILL."""


class HBaseStartError(HBaseError):
    """Start failed; `log_excerpt` holds the log lines that say why."""

    def __init__(self, message: str, log_excerpt: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.log_excerpt = log_excerpt


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


class _Layout:
    """Paths inside one home directory."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.conf = home / "conf"
        self.data = home / "data"
        self.logs = home / "logs"
        self.run = home / "run"
        self.classpath = home / "classpath.txt"
        self.classpath_sha = home / "classpath.txt.sha256"
        self.state = self.run / "state.json"
        self.lock = self.run / "start.lock"

    def pid_file(self, name: Component) -> Path:
        return self.run / f"{name}.pid"

    def log_file(self, name: Component) -> Path:
        return self.logs / f"{name}.log"


class StandaloneHBase:
    """Provisions, starts, probes and stops the embedded standalone HBase (three JVMs)."""

    def __init__(self, settings: HBaseSettings) -> None:
        self.settings = replace(settings, home=Path(settings.home).resolve())
        self.paths = _Layout(self.settings.home)

    # ----------------------------------------------------------------------------- fetch

    def fetch(self) -> Path:
        """Resolve the HBase classpath with Maven (once; again only if the pom changed).

        Returns the file holding the classpath. Jars land in ~/.m2, so a re-resolve is quick.
        """
        pom_res = resources.files("rowcast_dev.hbase").joinpath("pom.xml")
        digest = hashlib.sha256(pom_res.read_bytes()).hexdigest()
        if self._classpath_current(digest):
            return self.paths.classpath
        mvn = shutil.which("mvn")
        if mvn is None:
            raise FetchError(
                "Maven ('mvn') is not on PATH; it is needed once to download HBase. "
                "Install it (e.g. `apt-get install maven`) and run `rowcast hbase fetch`."
            )
        self.paths.home.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix="classpath.", suffix=".tmp", dir=self.paths.home)
        os.close(fd)
        tmp = Path(tmp_name)
        tmp.chmod(0o644)  # mkstemp makes it 0600; nothing secret in a classpath
        try:
            with resources.as_file(pom_res) as pom:
                cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:build-classpath",
                       f"-Dmdep.outputFile={tmp}"]  # fmt: skip
                done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0 or not tmp.read_text().strip():
                tail = "\n".join((done.stdout + done.stderr).splitlines()[-_LOG_LINES:])
                raise FetchError(f"mvn failed (exit {done.returncode}):\n{tail}")
            tmp.replace(self.paths.classpath)
            self.paths.classpath_sha.write_text(digest + "\n")
        finally:
            tmp.unlink(missing_ok=True)
        return self.paths.classpath

    def _classpath_current(self, digest: str) -> bool:
        try:
            if self.paths.classpath_sha.read_text().strip() != digest:
                return False
            entries = self.paths.classpath.read_text().strip().split(os.pathsep)
        except OSError:
            return False
        # A cleaned ~/.m2 leaves a classpath pointing at nothing: resolve again.
        return bool(entries) and all(os.path.exists(e) for e in entries)

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
        java = shutil.which("java")
        if java is None:
            raise HBaseStartError("'java' is not on PATH; HBase 2.6 needs a JDK (17 tested).")
        for directory in (self.paths.conf, self.paths.data, self.paths.logs, self.paths.run):
            directory.mkdir(parents=True, exist_ok=True)
        with self._start_lock():
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

    @contextlib.contextmanager
    def _start_lock(self) -> Iterator[None]:
        with open(self.paths.lock, "a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

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
        return [
            java,
            f"-Xmx{heap}",
            *JVM_FLAGS,
            f"-Dlog4j2.configurationFile={conf / 'log4j2.properties'}",
            *self._markers(name),
            # conf first so our hbase-site.xml wins over any default on the classpath.
            "-cp",
            f"{conf}{os.pathsep}{classpath}",
            main,
            *args,
        ]

    def _markers(self, name: Component) -> tuple[str, str]:
        return (f"-Drowcast.home={self.paths.home}", f"-Drowcast.component={name}")

    def _launch(self, java: str, name: Component, settings: HBaseSettings, classpath: str) -> None:
        log_path = self.paths.log_file(name)
        if log_path.exists():
            # Keep one previous log; a fresh file means the excerpt on failure is this run's.
            log_path.replace(log_path.with_name(log_path.name + ".1"))
        argv = self.command(name, java, settings, classpath)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.paths.home,
                # Own session: the JVM outlives the CLI and ignores the terminal's Ctrl-C.
                start_new_session=True,
            )
        processes.register(proc, argv)
        processes.write_atomic(self.paths.pid_file(name), f"{proc.pid}\n")

    def _wait_ready(self, deadline: float, started: Sequence[Component]) -> None:
        last = "no probe yet"
        while True:
            running = self._running()
            for name in COMPONENTS:
                if name not in running:
                    code = processes.exit_code(self._pid_from_file(name))
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
        stragglers = [pid for _, pid in self._marked_processes()]
        for pid in stragglers:
            processes.send_signal(pid, signal.SIGKILL)
        left = [pid for pid in stragglers if not processes.wait_gone([pid], _KILL_WAIT_S)]
        for name in COMPONENTS:
            self.paths.pid_file(name).unlink(missing_ok=True)
        if left:
            raise HBaseStopError(f"processes survived SIGKILL: pids {left}")
        self.paths.state.unlink(missing_ok=True)
        return was_running or bool(stragglers)

    def kill(self, component: Component, sig: int) -> None:
        """Send `sig` to one JVM (for fault tests); the pid file stays, as after a crash."""
        pid = self._running().get(component)
        if pid is None:
            raise HBaseError(f"{component} is not running")
        processes.send_signal(pid, sig)

    def _terminate(self, names: Sequence[Component], grace_s: float) -> None:
        running = self._running()
        pids = [running[n] for n in names if n in running]
        for pid in pids:
            processes.send_signal(pid, signal.SIGTERM)
        if processes.wait_gone(pids, grace_s):
            return
        for pid in pids:
            processes.send_signal(pid, signal.SIGKILL)
        processes.wait_gone(pids, _KILL_WAIT_S)

    # ----------------------------------------------------------------------------- processes

    def _running(self) -> dict[Component, int]:
        found: dict[Component, int] = {}
        marked: dict[Component, int] | None = None
        for name in COMPONENTS:
            pid = self._pid_from_file(name)
            if pid is not None and self._is_ours(pid, name):
                found[name] = pid
                continue
            # Pid file missing or stale: look for the JVM by its marker (scan once, lazily).
            if marked is None:
                marked = self._find_marked()
            if name in marked:
                found[name] = marked[name]
        return found

    def _pid_from_file(self, name: Component) -> int | None:
        try:
            return int(self.paths.pid_file(name).read_text().strip())
        except (OSError, ValueError):
            return None

    def _is_ours(self, pid: int, name: Component) -> bool:
        if not processes.alive(pid):
            return False
        child = processes.CHILDREN.get(pid)
        # Between fork and exec /proc still shows Python's command line, so for our own
        # children trust the command we launched.
        argv = child.argv if child is not None else processes.cmdline(pid)
        return all(marker in argv for marker in self._markers(name))

    def _find_marked(self) -> dict[Component, int]:
        found: dict[Component, int] = {}
        for name, pid in self._marked_processes():
            found.setdefault(name, pid)
        return found

    def _marked_processes(self) -> list[tuple[Component, int]]:
        """Every live process whose command line carries this home's marker."""
        home_marker = f"-Drowcast.home={self.paths.home}"
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            argv = processes.cmdline(pid)
            if home_marker not in argv or not processes.alive(pid):
                continue
            for name in COMPONENTS:
                if f"-Drowcast.component={name}" in argv:
                    found.append((name, pid))
        return found

    # ----------------------------------------------------------------------------- logs

    def log_excerpt(self, names: Sequence[Component], limit: int = _LOG_LINES) -> str:
        """The log lines most likely to explain a failure: errors first, then the tail.

        Up to half of `limit` goes to ERROR/Exception/FATAL lines from the named logs (stack
        frames dropped, repeats that differ only in numbers shown once), the rest to the tail
        of the first log (for a timeout, the master's). Long lines are cut.
        """
        logs = {name: processes.tail_lines(self.paths.log_file(name), 5000) for name in names}
        latest: dict[str, str] = {}
        for name, lines in logs.items():
            for line in lines:
                if _INTERESTING.search(line) and not _STACK_FRAME.match(line):
                    key = name + _DIGITS.sub("#", line)
                    latest.pop(key, None)  # re-insert: dict order = order of last occurrence
                    latest[key] = f"{name}: {processes.clip(line)}"
        errors = list(latest.values())[-(limit // 2) :]
        primary = names[0] if names else None
        # Stack frames crowd out the lines around them; the exception line itself stays.
        tail = [
            processes.clip(line) for line in logs.get(primary, []) if not _STACK_FRAME.match(line)
        ] if primary else []  # fmt: skip
        tail = tail[-(limit - len(errors)) :] if limit > len(errors) else []
        parts = []
        if errors:
            parts.append("--- error lines ---")
            parts.extend(errors)
        if primary is not None:
            parts.append(f"--- tail of {self.paths.log_file(primary)} ---")
            parts.extend(tail or ["(empty)"])
        return "\n".join(parts)
