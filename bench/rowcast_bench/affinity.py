"""Moves running processes (every thread of them) onto one core for a while, and back.

`rowcast bench --downstream-cpu N` puts HBase's JVMs and the AuditServices on core N for the
run, off the measured server's core: the nearest a 2-core machine comes to production, where
they run on other machines. A JVM has dozens of threads and makes more, so the affinity is set
on every thread (a new thread inherits its creator's), and each thread's own mask is restored
at the end, so that an HBase the run found already running is left as it was. Linux only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator

from rowcast_bench.tools import available_cpus


def thread_ids(pid: int) -> list[int]:
    """The threads of a live process (empty when it is gone)."""
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def _set(tid: int, cpus: set[int]) -> bool:
    """Set one thread's mask; False if the thread is gone."""
    try:
        os.sched_setaffinity(tid, cpus)
    except (ProcessLookupError, FileNotFoundError):
        return False
    return True


@contextlib.contextmanager
def pinned(pids: Iterable[int], cpu: int) -> Iterator[int]:
    """Every thread of `pids` on core `cpu` inside the block (yields how many threads were
    moved); each thread that still exists afterwards gets its own earlier mask back. Threads
    started inside the block inherit the pinned mask and are returned to the union of what
    the process's threads had."""
    if cpu not in available_cpus():
        raise ValueError(f"core {cpu} is not one this process may use")
    saved: dict[int, tuple[int, set[int]]] = {}
    for pid in pids:
        for tid in thread_ids(pid):
            with contextlib.suppress(ProcessLookupError, FileNotFoundError):
                saved[tid] = (pid, os.sched_getaffinity(tid))
    moved = sum(1 for tid in saved if _set(tid, {cpu}))
    try:
        yield moved
    finally:
        by_process: dict[int, set[int]] = {}
        for pid, mask in saved.values():
            by_process.setdefault(pid, set()).update(mask)
        for pid, mask in by_process.items():
            for tid in thread_ids(pid):
                original = saved.get(tid)
                _set(tid, original[1] if original is not None else mask)
