"""What one measurement yields: throughput and latency percentiles, in one plain record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from rowcast_bench.plan import BenchOptions

#: Latency quantiles kept per measurement (for the CDF plots): 0, 1, ..., 100 percent.
QUANTILE_POINTS = 101


@dataclass(frozen=True)
class Measurement:
    """One load run's result: calls per second, latency percentiles (ms), and what ran.

    `keys_per_call` is how many predictions one call carries (32 for a batch, the messages
    of a stream call), so `keys_per_s` compares throughput across RPC shapes.
    """

    name: str
    description: str
    rpc: str
    server: str
    concurrency: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    count: int
    errors: int
    keys_per_call: int = 1
    target_rps: float | None = None
    #: Latency at 0%, 1%, ..., 100% (ms), for plotting.
    quantiles_ms: tuple[float, ...] = field(default=(), repr=False)
    error_detail: dict[str, int] = field(default_factory=dict)
    #: Cores busy during the run, and cores' worth used by processes outside the benchmark
    #: (another job on the machine skews the numbers; see rowcast_bench.cpu).
    busy_cores: float | None = None
    other_cores: float | None = None
    #: CPU time the measured server process spent per call (user + system, all threads):
    #: what a call costs the server, whatever else competed for the cores meanwhile.
    server_cpu_us_per_call: float | None = None
    #: CPU time HBase and the AuditService spent per call meanwhile (the audit's delivery and
    #: storage, a miss's read, and whatever those JVMs did besides: JIT, flushes, GC).
    downstream_cpu_us_per_call: float | None = None

    @property
    def keys_per_s(self) -> float:
        return self.rps * self.keys_per_call

    @property
    def error_rate(self) -> float:
        total = self.count + self.errors
        return self.errors / total if total else 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["keys_per_s"] = self.keys_per_s
        data["quantiles_ms"] = list(self.quantiles_ms)
        return data


def quantiles_ms(latencies_s: Sequence[float] | np.ndarray) -> tuple[float, ...]:
    """Latency at every whole percent (ms) of a sample given in seconds."""
    values = np.asarray(latencies_s, dtype=float)
    if values.size == 0:
        return ()
    points = np.percentile(values * 1000.0, np.linspace(0, 100, QUANTILE_POINTS))
    return tuple(round(float(p), 4) for p in points)


@dataclass
class RunResult:
    """Everything one run measured, the failures, and the facts needed to read the numbers."""

    started: datetime
    options: BenchOptions
    measurements: dict[str, Measurement] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
