"""The bench's CPU meter tells the server's, the downstream processes' and others' CPU apart."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from rowcast_bench.cpu import CpuMeter

_BURN = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass\n"
_SLEEP = "import time; time.sleep(5)"


def _spawn(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def test_downstream_cpu_is_its_processes_cpu_and_not_the_servers() -> None:
    server, busy = _spawn(_SLEEP), _spawn(_BURN + _SLEEP)
    try:
        meter = CpuMeter(lambda: [busy.pid], server.pid, downstream=lambda: [busy.pid])
        meter.start()
        time.sleep(1.2)
        use = meter.stop()
    finally:
        for p in (server, busy):
            p.kill()
            p.wait()
    assert use.downstream_cpu_s == pytest.approx(0.6, abs=0.25)
    assert use.server_cpu_s is not None and use.server_cpu_s < 0.1
    # The burner is under test: its CPU is not counted as someone else's.
    assert use.other_cores < 0.3


def test_without_downstream_pids_there_is_no_downstream_figure() -> None:
    meter = CpuMeter(lambda: [])
    meter.start()
    assert meter.stop().downstream_cpu_s is None
