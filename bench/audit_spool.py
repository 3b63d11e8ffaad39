"""Benchmark of the audit spool: what `record()` costs at each durability level.

    python bench/audit_spool.py [--records N] [--dir DIR] [--json OUT]

For `process` and `fsync`, at concurrency 1 and 64, N decisions (three inputs, as the demo
model's) are recorded one per call, as Predict does; the sink's sender targets a port nothing
listens on, so only spooling is measured. Prints records/s and p50/p99 latency of `record()`;
--json also writes them. Run it on the disk the spool will use (--dir): fsync cost is the
disk's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from rowcast.core.keys import new_decision_id
from rowcast.core.records import Decision, Source
from rowcast.prediction.audit_sink import AuditSink, Durability, SpoolConfig
from rowcast_dev.hbase.ports import free_port


def decision(i: int) -> Decision:
    return Decision(
        decision_id=new_decision_id(),
        model="credit_default",
        model_version=1,
        subject=f"customer-{i}",
        features={"balance": 1800.0 + i % 100, "income": 30000.0, "student": "No"},
        key_hex="0a00310017",
        output=0.4634398935377231,
        source=Source.HBASE,
        decide_time_ms=int(time.time() * 1000),
    )


async def run(
    directory: Path, durability: Durability, concurrency: int, n: int
) -> dict[str, float]:
    sink = AuditSink(
        f"127.0.0.1:{free_port()}",
        SpoolConfig(directory, durability=durability, max_bytes=8 << 30),
    )
    await sink.start()
    made = [decision(i) for i in range(n)]
    latencies: list[float] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < n:
            d = made[next_index]
            next_index += 1
            t = time.perf_counter()
            await sink.record([d])
            latencies.append(time.perf_counter() - t)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    syncs = sink._committer.syncs if sink._committer is not None else 0
    await sink.stop(0.0)
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "durability": durability,  # type: ignore[dict-item]
        "concurrency": concurrency,
        "records": n,
        "records_per_s": round(n / elapsed),
        "p50_us": round(cuts[49] * 1e6, 1),
        "p99_us": round(cuts[98] * 1e6, 1),
        "fsyncs": syncs,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to spool (default: a temp dir)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    ns = parser.parse_args()
    base = ns.dir or Path(tempfile.mkdtemp(prefix="rowcast-bench-"))
    results = []
    for durability in ("process", "fsync"):
        for concurrency in (1, 64):
            n = ns.records if (durability, concurrency) != ("fsync", 1) else ns.records // 10
            directory = base / f"{durability}-{concurrency}"
            results.append(await run(directory, durability, concurrency, n))
            r = results[-1]
            print(
                f"{durability:8} c={concurrency:<3} {r['records']:>7} records  "
                f"{r['records_per_s']:>8,.0f} rec/s  p50 {r['p50_us']:>8.1f} us  "
                f"p99 {r['p99_us']:>8.1f} us  fsyncs {r['fsyncs']}",
                flush=True,
            )
    if ns.json:
        ns.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
