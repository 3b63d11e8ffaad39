"""The store floor: a raw happybase `row()` loop on a version table, timed in-process.

No pool, no thread hand-off, no asyncio, no gRPC: one Thrift1 connection, one blocking
`row()` per key, each timed with `time.perf_counter`. A rowcast cache miss cannot be cheaper
than one of these plus a bare gRPC round trip.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from typing import Final

import happybase

from rowcast.store.predictions import OUTPUT_COL, VERSION_COL
from rowcast_bench.cpu import CpuMeter
from rowcast_bench.measurement import Measurement, quantiles_ms

_COLUMNS: Final = [OUTPUT_COL, VERSION_COL]


@contextlib.contextmanager
def on_cpu(cpu: int | None) -> Iterator[None]:
    """Run the calling thread on core `cpu` for the duration (None: leave it alone)."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class RawRowLoop:
    """Times `table.row(key)` over a list of keys, round-robin, for a fixed duration."""

    def __init__(self, host: str, port: int, table: str, timeout_s: float = 10.0) -> None:
        self._host = host
        self._port = port
        self._table = table
        self._timeout_ms = int(timeout_s * 1000)

    def measure(
        self,
        keys: Sequence[bytes],
        duration_s: float,
        cpu: int | None,
        warmup_s: float = 0.5,
        meter: CpuMeter | None = None,
    ) -> Measurement:
        if not keys:
            raise ValueError("need at least one key")
        conn = happybase.Connection(self._host, self._port, timeout=self._timeout_ms)
        try:
            table = conn.table(self._table)
            with on_cpu(cpu):
                self._loop(table, keys, warmup_s)
                if meter is not None:
                    meter.start()
                latencies, elapsed, missing = self._loop(table, keys, duration_s)
                use = meter.stop() if meter is not None else None
        finally:
            conn.close()
        qs = quantiles_ms(latencies)
        return Measurement(
            name="raw_row",
            description="happybase table.row() loop, one connection, in-process",
            rpc="row",
            server="hbase",
            concurrency=1,
            duration_s=duration_s,
            rps=len(latencies) / elapsed,
            p50_ms=qs[50],
            p90_ms=qs[90],
            p99_ms=qs[99],
            count=len(latencies),
            errors=missing,
            quantiles_ms=qs,
            error_detail={"row not found": missing} if missing else {},
            busy_cores=use.busy_cores if use else None,
            other_cores=use.other_cores if use else None,
        )

    @staticmethod
    def _loop(
        table: happybase.Table, keys: Sequence[bytes], duration_s: float
    ) -> tuple[list[float], float, int]:
        latencies: list[float] = []
        missing = 0
        clock = time.perf_counter
        started = clock()
        end = started + duration_s
        i = 0
        while True:
            t0 = clock()
            if t0 >= end:
                break
            row = table.row(keys[i % len(keys)], columns=_COLUMNS)
            latencies.append(clock() - t0)
            if OUTPUT_COL not in row:
                missing += 1
            i += 1
        return latencies, clock() - started, missing
