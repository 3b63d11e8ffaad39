"""Benchmark: how fast the AuditService's store writes decisions, by cell-timestamp granularity.

`AuditStore.record` writes a batch of decisions with happybase batches, and Thrift1 gives a
batch one timestamp: a batch costs one call per distinct cell timestamp per table. With the
decision's exact millisecond as the timestamp (the baseline, `--baseline-ms 1`), a batch of 500
decisions served at 1,000/s is ~500 calls per table; truncated to a minute (the default
`AUDIT_CELL_TS_MS`), one or two. This measures both in alternating rounds in one run, against
a standalone HBase of its own, and reports decisions/s and the ratio.

    python bench/audit_write.py [--decisions 20000] [--batch 500] [--rate 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rowcast.config import HBaseSettings
from rowcast.core.keys import AUDIT_CELL_TS_MS, new_decision_id
from rowcast.core.records import Decision, Source
from rowcast.store.admin import DDL_TIMEOUT_S, TableAdmin
from rowcast.store.audit import AuditStore
from rowcast.store.client import HBaseClient
from rowcast.store.schema import ensure_schema
from rowcast_dev.hbase.ports import on_free_ports
from rowcast_dev.hbase.runtime import StandaloneHBase

RESULTS = Path(__file__).parent / "results"


def decisions(n: int, rate: float, start_ms: int) -> list[Decision]:
    """n decisions as served at `rate` per second from start_ms (distinct ids and subjects)."""
    out = []
    for i in range(n):
        ms = start_ms + int(i * 1000 / rate)
        out.append(
            Decision(
                decision_id=new_decision_id(ms),
                model="bench",
                model_version=1,
                subject=f"s-{start_ms}-{i}",
                features={"balance": 1000.0 + i % 97, "income": 30000.0, "student": "No"},
                key_hex="0a00010002",
                output=0.25,
                source=Source.HBASE,
                decide_time_ms=ms,
            )
        )
    return out


async def write_rate(store: AuditStore, batch: list[list[Decision]]) -> float:
    started = time.perf_counter()
    for group in batch:
        await store.record(group, timeout_s=120)
    return sum(len(g) for g in batch) / (time.perf_counter() - started)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="rowcast-bench-audit-"))
    settings = on_free_ports(HBaseSettings(home=home, timeout_s=60.0))
    hb = StandaloneHBase(settings)
    print(f"starting HBase in {home} ...", flush=True)
    hb.start(timeout_s=300)
    client = HBaseClient(settings)
    try:
        ensure_schema(TableAdmin(settings), timeout_s=DDL_TIMEOUT_S)
        stores = {
            "baseline": AuditStore(client, cell_ts_ms=args.baseline_ms),
            "rowcast": AuditStore(client, cell_ts_ms=AUDIT_CELL_TS_MS),
        }
        rates: dict[str, list[float]] = {name: [] for name in stores}
        start_ms = int(time.time() * 1000)
        # Warm-up (connections, region locations), not counted.
        warm_up = decisions(args.batch, args.rate, start_ms - 10**7)
        await stores["rowcast"].record(warm_up, timeout_s=120)
        for round_no in range(args.rounds):
            for name, store in stores.items():
                start_ms += int(args.decisions * 1000 / args.rate) + 1000
                ds = decisions(args.decisions, args.rate, start_ms)
                batches = [ds[i : i + args.batch] for i in range(0, len(ds), args.batch)]
                rate = await write_rate(store, batches)
                rates[name].append(rate)
                print(f"round {round_no + 1} {name}: {rate:,.0f} decisions/s", flush=True)
        ratios = [r / b for r, b in zip(rates["rowcast"], rates["baseline"], strict=True)]
        return {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
            "args": vars(args),
            "decisions_per_second": {k: [round(v) for v in vs] for k, vs in rates.items()},
            "median_decisions_per_second": {
                k: round(statistics.median(vs)) for k, vs in rates.items()
            },
            "ratio_rowcast_vs_baseline_per_round": [round(r, 2) for r in ratios],
            "median_ratio": round(statistics.median(ratios), 2),
        }
    finally:
        client.close()
        print("stopping HBase ...", flush=True)
        hb.stop()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=20_000, help="per round and variant")
    parser.add_argument("--batch", type=int, default=500, help="decisions per record() call")
    parser.add_argument("--rate", type=float, default=1_000.0, help="served decisions/s")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-ms", type=int, default=1, help="baseline granularity")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"audit-write-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
