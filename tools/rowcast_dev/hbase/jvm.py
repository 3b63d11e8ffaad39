"""The JVMs of one home directory: classpath, launch, find, signal, stop, and explain failures.

Shared by the standalone runtime (runtime.py) and the cluster (cluster.py). Layout of `<home>`::

    classpath.txt          Maven-resolved classpath (+ classpath.txt.sha256 of the pom it came from)
    conf/                  configuration, re-rendered on every start
    data/                  HBase (and HDFS, ZooKeeper) data, tmp
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
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Final

from rowcast_dev.hbase import processes

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

#: How long after SIGKILL we wait for the kernel to reap a process before giving up.
KILL_WAIT_S: Final = 10.0
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


class Layout:
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

    def pid_file(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def make_dirs(self) -> None:
        for directory in (self.conf, self.data, self.logs, self.run):
            directory.mkdir(parents=True, exist_ok=True)


def fetch_classpath(paths: Layout) -> Path:
    """Resolve the HBase classpath with Maven (once; again only if the pom changed).

    Returns the file holding the classpath. Jars land in ~/.m2, so a re-resolve is quick.
    """
    pom_res = resources.files("rowcast_dev.hbase").joinpath("pom.xml")
    digest = hashlib.sha256(pom_res.read_bytes()).hexdigest()
    if _classpath_current(paths, digest):
        return paths.classpath
    mvn = shutil.which("mvn")
    if mvn is None:
        raise FetchError(
            "Maven ('mvn') is not on PATH; it is needed once to download HBase. "
            "Install it (e.g. `apt-get install maven`) and run `rowcast hbase fetch`."
        )
    paths.home.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix="classpath.", suffix=".tmp", dir=paths.home)
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
        tmp.replace(paths.classpath)
        paths.classpath_sha.write_text(digest + "\n")
    finally:
        tmp.unlink(missing_ok=True)
    return paths.classpath


def _classpath_current(paths: Layout, digest: str) -> bool:
    try:
        if paths.classpath_sha.read_text().strip() != digest:
            return False
        entries = paths.classpath.read_text().strip().split(os.pathsep)
    except OSError:
        return False
    # A cleaned ~/.m2 leaves a classpath pointing at nothing: resolve again.
    return bool(entries) and all(os.path.exists(e) for e in entries)


def java_or_fail() -> str:
    java = shutil.which("java")
    if java is None:
        raise HBaseStartError("'java' is not on PATH; HBase 2.6 needs a JDK (17 tested).")
    return java


class JvmGroup:
    """The named JVMs of one home: launches them, finds them by marker, signals and stops them.

    Knows nothing about HBase; the standalone runtime and the cluster say which names exist
    and how each is started.
    """

    def __init__(self, paths: Layout, names: Sequence[str]) -> None:
        self.paths = paths
        self.names = tuple(names)

    def markers(self, name: str) -> tuple[str, str]:
        return (f"-Drowcast.home={self.paths.home}", f"-Drowcast.component={name}")

    @contextlib.contextmanager
    def start_lock(self) -> Iterator[None]:
        """Serialises starts (and restarts) of one home across processes."""
        self.paths.run.mkdir(parents=True, exist_ok=True)
        with open(self.paths.lock, "a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def launch(self, name: str, argv: Sequence[str]) -> int:
        """Start one JVM in its own session with its log and pid file; returns its pid."""
        log_path = self.paths.log_file(name)
        if log_path.exists():
            # Keep one previous log; a fresh file means the excerpt on failure is this run's.
            log_path.replace(log_path.with_name(log_path.name + ".1"))
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.paths.home,
                # Own session: the JVM outlives the CLI and ignores the terminal's Ctrl-C.
                start_new_session=True,
            )
        processes.register(proc, list(argv))
        processes.write_atomic(self.paths.pid_file(name), f"{proc.pid}\n")
        return proc.pid

    def running(self) -> dict[str, int]:
        """Pids of the JVMs that are alive, by name (pid file first, marker scan as fallback)."""
        found: dict[str, int] = {}
        marked: dict[str, int] | None = None
        for name in self.names:
            pid = self.pid_from_file(name)
            if pid is not None and self.is_ours(pid, name):
                found[name] = pid
                continue
            # Pid file missing or stale: look for the JVM by its marker (scan once, lazily).
            if marked is None:
                marked = {}
                for other, other_pid in self.marked_processes():
                    marked.setdefault(other, other_pid)
            if name in marked:
                found[name] = marked[name]
        return found

    def pid_from_file(self, name: str) -> int | None:
        try:
            return int(self.paths.pid_file(name).read_text().strip())
        except (OSError, ValueError):
            return None

    def exit_code(self, name: str) -> int | None:
        return processes.exit_code(self.pid_from_file(name))

    def is_ours(self, pid: int, name: str) -> bool:
        if not processes.alive(pid):
            return False
        child = processes.CHILDREN.get(pid)
        # Between fork and exec /proc still shows Python's command line, so for our own
        # children trust the command we launched.
        argv = child.argv if child is not None else processes.cmdline(pid)
        return all(marker in argv for marker in self.markers(name))

    def marked_processes(self, names: Sequence[str] | None = None) -> list[tuple[str, int]]:
        """Every live process whose command line carries this home's marker (any of `names`,
        default: this group's names)."""
        wanted = self.names if names is None else tuple(names)
        home_marker = f"-Drowcast.home={self.paths.home}"
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            argv = processes.cmdline(pid)
            if home_marker not in argv or not processes.alive(pid):
                continue
            for name in wanted:
                if f"-Drowcast.component={name}" in argv:
                    found.append((name, pid))
        return found

    def any_marked(self) -> list[tuple[str, int]]:
        """Every live process of this home, whatever its component name."""
        home_marker = f"-Drowcast.home={self.paths.home}"
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            argv = processes.cmdline(pid)
            if home_marker not in argv or not processes.alive(pid):
                continue
            names = [a.split("=", 1)[1] for a in argv if a.startswith("-Drowcast.component=")]
            found.append((names[0] if names else "?", pid))
        return found

    def signal(self, name: str, sig: int) -> None:
        """Send `sig` to one JVM (for fault tests); the pid file stays, as after a crash."""
        pid = self.running().get(name)
        if pid is None:
            raise HBaseError(f"{name} is not running")
        processes.send_signal(pid, sig)

    def terminate(self, names: Sequence[str], grace_s: float) -> None:
        """SIGTERM the named JVMs together, SIGKILL whatever is left after `grace_s`."""
        running = self.running()
        pids = [running[n] for n in names if n in running]
        for pid in pids:
            processes.send_signal(pid, signal.SIGTERM)
        if processes.wait_gone(pids, grace_s):
            return
        for pid in pids:
            processes.send_signal(pid, signal.SIGKILL)
        processes.wait_gone(pids, KILL_WAIT_S)

    def kill_stragglers(self) -> tuple[list[int], list[int]]:
        """SIGKILL anything still carrying this home's marker (a lost pid file, a racing second
        copy); removes the pid files. Returns (killed, survivors)."""
        stragglers = [pid for _, pid in self.any_marked()]
        for pid in stragglers:
            processes.send_signal(pid, signal.SIGKILL)
        left = [pid for pid in stragglers if not processes.wait_gone([pid], KILL_WAIT_S)]
        for name in self.names:
            self.paths.pid_file(name).unlink(missing_ok=True)
        return stragglers, left

    def log_excerpt(self, names: Sequence[str], limit: int = _LOG_LINES) -> str:
        """The log lines most likely to explain a failure: errors first, then the tail.

        Up to half of `limit` goes to ERROR/Exception/FATAL lines from the named logs (stack
        frames dropped, repeats that differ only in numbers shown once), the rest to the tail
        of the first log. Long lines are cut.
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


def java_command(
    java: str,
    heap: str,
    conf: Path,
    markers: Sequence[str],
    classpath: str,
    main: str,
    args: Sequence[str],
    extra_flags: Sequence[str] = (),
) -> list[str]:
    """A JVM command line: heap, JDK 17 flags, log4j2 config from `conf`, markers, and `conf`
    first on the classpath so our *-site.xml files win over any default on it."""
    return [
        java,
        f"-Xmx{heap}",
        *JVM_FLAGS,
        *extra_flags,
        f"-Dlog4j2.configurationFile={conf / 'log4j2.properties'}",
        *markers,
        "-cp",
        f"{conf}{os.pathsep}{classpath}",
        main,
        *args,
    ]
