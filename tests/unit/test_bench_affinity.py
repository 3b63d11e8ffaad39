"""`rowcast bench --downstream-cpu` (bench/rowcast_bench/affinity.py): every thread of a running
process moves to the core for the run and gets its own mask back afterwards, and a core the run
may not use, or the measured servers' own, is refused."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from rowcast.config import Settings
from rowcast_bench.affinity import pinned, thread_ids
from rowcast_bench.plan import BenchOptions
from rowcast_bench.runner import BenchRun

CORES = sorted(os.sched_getaffinity(0))
needs_two_cores = pytest.mark.skipif(len(CORES) < 2, reason="needs two usable cores")

#: A process with four threads that sleep until killed.
_THREADS = (
    "import threading, time\n"
    + "\n".join(
        "threading.Thread(target=time.sleep, args=(600,), daemon=True).start()" for _ in range(3)
    )
    + "\nprint('up', flush=True)\ntime.sleep(600)\n"
)


@pytest.fixture
def threaded() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", _THREADS], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
    yield proc
    proc.kill()
    proc.wait()
    proc.stdout.close()


def masks(pid: int) -> dict[int, set[int]]:
    return {tid: os.sched_getaffinity(tid) for tid in thread_ids(pid)}


@needs_two_cores
def test_every_thread_is_pinned_inside_and_restored_after(
    threaded: subprocess.Popen[str],
) -> None:
    first, second = CORES[0], CORES[1]
    # One thread on its own mask before, to see that each thread gets its own mask back.
    one = sorted(thread_ids(threaded.pid))[-1]
    os.sched_setaffinity(one, {second})
    before = masks(threaded.pid)
    assert len(before) == 4

    with pinned([threaded.pid], first) as moved:
        assert moved == 4
        assert all(mask == {first} for mask in masks(threaded.pid).values())

    assert masks(threaded.pid) == before
    assert before[one] == {second}


def test_a_core_this_process_may_not_use_is_refused(threaded: subprocess.Popen[str]) -> None:
    before = masks(threaded.pid)
    with (
        pytest.raises(ValueError, match="not one this process may use"),
        pinned([threaded.pid], max(CORES) + 64),
    ):
        pass
    assert masks(threaded.pid) == before


def test_a_process_gone_is_skipped() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    time.sleep(0.05)
    with pinned([proc.pid], CORES[0]) as moved:
        assert moved == 0


@needs_two_cores
def test_the_downstream_may_not_share_the_measured_servers_core() -> None:
    options = BenchOptions(server_cpu=CORES[1], client_cpu=CORES[0], downstream_cpu=CORES[1])
    with pytest.raises(RuntimeError, match="measured servers' core"):
        BenchRun(options, Settings.from_env(), lambda _: None).run()


def test_a_downstream_core_that_does_not_exist_is_refused() -> None:
    options = BenchOptions(
        server_cpu=CORES[-1], client_cpu=CORES[0], downstream_cpu=max(CORES) + 64
    )
    with pytest.raises(RuntimeError, match="--downstream-cpu"):
        BenchRun(options, Settings.from_env(), lambda _: None).run()
