"""How busy the machine was during a measurement, and how much of that was someone else.

Benchmarks here share a 2-core machine with whatever else runs. A CpuMeter reads total busy
time from /proc/stat and the CPU time of the processes under test (server, HBase, ghz, this
process) before and after a run; the difference is `other_cores`: cores' worth of CPU that
processes outside the benchmark used. It also sums the CPU of the downstream processes
(HBase, the AuditService): what a measured call costs the machine beyond the server itself,
and the first sign when a JVM's JIT, a flush or a compaction ate into a run. Linux only.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _busy_s() -> float:
    """Seconds all cores spent not idle since boot."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    # guest time is already counted in user/nice.
    return (sum(values[:8]) - idle) / _TICKS


def _process_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a live process and of its live child
    processes (the copies `rowcast serve --processes N` starts); 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / _TICKS
    return own + sum(_process_s(child) for child in _children(pid))


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def _own_s() -> float:
    """CPU seconds of this process and its reaped children (ghz runs are reaped children)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass(frozen=True)
class CpuUse:
    """Cores in use over a window: all of them, and those outside the benchmark."""

    busy_cores: float
    other_cores: float
    #: CPU seconds the measured server process itself used (None: no server given).
    server_cpu_s: float | None = None
    #: CPU seconds the downstream processes used (None: none given).
    downstream_cpu_s: float | None = None


class CpuMeter:
    """Measures CPU use over one window; `pids` are the live processes under test, and
    `downstream` (a subset of them) the ones whose CPU is reported on its own."""

    def __init__(
        self,
        pids: Callable[[], Iterable[int]],
        server_pid: int | None = None,
        downstream: Callable[[], Iterable[int]] | None = None,
    ) -> None:
        self._pids = pids
        self._server_pid = server_pid
        self._downstream = downstream
        self._start: tuple[float, float, float, dict[int, float], frozenset[int]] | None = None

    def start(self) -> None:
        down = frozenset(self._downstream()) if self._downstream is not None else frozenset()
        pids = {pid: _process_s(pid) for pid in {*self._pids(), *self._server(), *down}}
        self._start = (time.monotonic(), _busy_s(), _own_s(), pids, down)

    def _server(self) -> list[int]:
        return [] if self._server_pid is None else [self._server_pid]

    def stop(self) -> CpuUse:
        if self._start is None:
            raise RuntimeError("CpuMeter.stop() before start()")
        t0, busy0, own0, pids0, down = self._start
        wall = max(time.monotonic() - t0, 1e-9)
        busy = _busy_s() - busy0
        used = {pid: _process_s(pid) - s for pid, s in pids0.items()}
        ours = _own_s() - own0 + sum(used.values())
        return CpuUse(
            busy_cores=busy / wall,
            other_cores=max(0.0, busy - ours) / wall,
            server_cpu_s=None if self._server_pid is None else used[self._server_pid],
            downstream_cpu_s=None if self._downstream is None else sum(used[p] for p in down),
        )
