"""Runs one benchmark: tools, HBase, the published model, then the measurements (see
`rowcast_bench.session`); returns what was measured, or why a measurement failed."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rowcast.config import Settings
from rowcast_bench.affinity import pinned
from rowcast_bench.fixture import LARGE_PARAMS, BenchModel, HBaseLease, ensure_model
from rowcast_bench.ghz import Ghz
from rowcast_bench.measurement import RunResult
from rowcast_bench.plan import BenchOptions
from rowcast_bench.protoset import write_protoset
from rowcast_bench.secure import prepare
from rowcast_bench.session import Session
from rowcast_bench.tools import GHZ_VERSION, GhzInstaller, available_cpus, taskset

Progress = Callable[[str], None]


class BenchRun:
    """Drives one benchmark run from tools to HBase to servers to ghz, in order.

    Servers run one configuration at a time on the server core, so an idle server never
    competes with the one under load; everything started here is stopped here.
    """

    def __init__(self, options: BenchOptions, settings: Settings, progress: Progress) -> None:
        self._o = options
        self._settings = settings
        self._progress = progress
        self._t0 = time.monotonic()

    def _say(self, message: str) -> None:
        self._progress(f"[{time.monotonic() - self._t0:6.1f}s] {message}")

    def run(self) -> RunResult:
        o = self._o
        result = RunResult(started=datetime.now(UTC), options=o)
        cpus = available_cpus()
        if o.client_cpu not in cpus or o.server_cpu not in cpus:
            raise RuntimeError(f"cores {o.client_cpu} and {o.server_cpu} needed, have {cpus}")
        if o.downstream_cpu is not None and o.downstream_cpu not in cpus:
            raise RuntimeError(f"--downstream-cpu {o.downstream_cpu}: not a core of {cpus}")
        if o.downstream_cpu == o.server_cpu:
            raise RuntimeError(
                f"--downstream-cpu {o.downstream_cpu} is the measured servers' core: HBase and "
                "the AuditService would share it (leave it out to let them float)"
            )
        taskset()
        self._say(f"ghz {GHZ_VERSION}: installing into {o.tools_dir} if missing")
        binary = GhzInstaller(o.tools_dir).ensure()
        scratch = Path(tempfile.mkdtemp(prefix="rowcast-bench-"))
        ok = False
        try:
            with HBaseLease(self._settings.hbase) as lease:
                how = "started on free ports" if lease.started else "already running, reused"
                self._say(f"HBase {how} (thrift {lease.settings.thrift_port})")
                settings = replace(self._settings, hbase=lease.settings)
                self._say(f"model {o.model}: publishing if no active version, training large")
                model = ensure_model(settings, o.model, o.republish)
                result.meta = _meta(o, model, lease.started)
                result.meta["loadavg_before"] = os.getloadavg()
                self._say(f"model {o.model} v{model.version} ({model.table})")
                protoset = write_protoset(scratch / "rowcast.protoset")
                # Made even with --insecure: the TLS + auth pair runs in every run.
                creds = prepare(settings.security, scratch)
                security = "TLS + token" if o.secure else "plain text (--insecure)"
                self._say(f"servers: {security}; CA {creds.ca_file}")
                ghz = Ghz(binary, o.client_cpu, scratch, protoset, creds.metadata_file)
                session = Session(o, settings, model, ghz, scratch, result, self._say, lease.pids)
                with self._downstream_pinned(lease.pids()):
                    session.run_all()
                result.meta["loadavg_after"] = os.getloadavg()
            ok = not result.failures
        finally:
            if ok:
                shutil.rmtree(scratch, ignore_errors=True)
            else:
                self._say(f"logs and ghz reports kept in {scratch}")
        return result

    @contextlib.contextmanager
    def _downstream_pinned(self, hbase_pids: list[int]) -> Iterator[None]:
        """HBase's processes on --downstream-cpu for the run, when given (the AuditServices
        are started there by the session)."""
        cpu = self._o.downstream_cpu
        if cpu is None:
            yield
            return
        with pinned(hbase_pids, cpu) as moved:
            self._say(f"HBase and the AuditServices pinned to core {cpu} ({moved} HBase threads)")
            yield


def _meta(o: BenchOptions, model: BenchModel, hbase_started: bool) -> dict[str, Any]:
    return {
        "machine": {
            "cpus": len(available_cpus()),
            "cpu_model": _cpu_model(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "packages": {p: _version(p) for p in ("grpcio", "happybase", "lightgbm", "numpy")},
        "ghz": GHZ_VERSION,
        "git": _git_head(),
        "pinning": {
            "ghz": o.client_cpu,
            "servers": o.server_cpu,
            "hbase_and_audit": o.downstream_cpu,
        },
        "security": "TLS + token auth" if o.secure else "insecure (plain text, no auth)",
        "hbase": "started by the run" if hbase_started else "already running",
        "model": {
            "name": model.name,
            "version": model.version,
            "table": model.table,
            "published_by_run": model.published,
            "large_model": f"{LARGE_PARAMS.num_trees} trees, {LARGE_PARAMS.num_leaves} leaves",
        },
    }


def _git_head() -> str:
    """The commit the servers ran from (and "+dirty" when the work tree differs), if known."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
