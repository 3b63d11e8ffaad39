"""The replica gate: a version table with region replicas is READY only when every secondary
replica serves the primary's rows.

A secondary replica learns the primary's rows through region replica replication (the WAL) or,
without it, only from flushed store files after a store-file refresh; until then a TIMELINE
read that falls back to it would find the row missing. So before READY the job reads a sample
of the written rows (cells spread evenly over the grid, plus the first and the last row of
every region) from the primary, then from each secondary (`targetReplicaId`), and waits, within
a bound, until every secondary returns every sampled row with the primary's value. A table
whose replicas do not catch up in time fails: the version is not READY, and the reason names
the replica that lagged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from rowcast.core.keys import prediction_key
from rowcast.core.signature import Signature
from rowcast.errors import StoreUnavailable
from rowcast.jobs.workers import cell_bins
from rowcast.store.predictions import PredictionStore

#: Cells read from every replica, spread evenly over the grid (the region edges come on top).
SAMPLE_CELLS: Final = 64
#: How long the job waits for the secondaries to serve the sample, in seconds.
REPLICA_WAIT_S: Final = 120.0
#: Pause between two rounds of reads while a replica lags, in seconds.
POLL_S: Final = 1.0
#: Deadline of one read of the sample from one replica, in seconds.
READ_S: Final = 10.0


@dataclass(frozen=True)
class ReplicaCheck:
    """What the gate found: `lagging` names each replica still short of the primary."""

    replicas: int
    sampled: int
    waited_s: float
    lagging: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.lagging


def sample_keys(signature: Signature, salt_buckets: int, cells: int = SAMPLE_CELLS) -> list[bytes]:
    """Row keys of `cells` grid cells spread evenly from the first cell to the last."""
    grid = signature.grid_size
    flat = np.unique(np.linspace(0, grid - 1, num=min(cells, grid)).astype(np.int64))
    bins = cell_bins(signature.cardinalities, flat)
    return [prediction_key(row, salt_buckets) for row in bins.tolist()]


def check_replicas(
    predictions: PredictionStore,
    table: str,
    replicas: int,
    keys: list[bytes],
    *,
    wait_s: float = REPLICA_WAIT_S,
    poll_s: float = POLL_S,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplicaCheck:
    """Wait (blocking, at most `wait_s`) until replicas 1..`replicas`-1 of `table` return the
    primary's row for every key in `keys` plus every region's first and last row."""
    started = time.monotonic()
    deadline = started + wait_s
    sample = sorted(set(keys) | set(predictions.region_edges(table, timeout_s=READ_S)))
    primary = predictions.replica_rows(table, sample, 0, timeout_s=READ_S)
    pending = {r: "not read yet" for r in range(1, replicas)}
    while True:
        for replica in list(pending):
            try:
                rows = predictions.replica_rows(table, sample, replica, timeout_s=READ_S)
            except StoreUnavailable as exc:
                pending[replica] = f"unreadable ({exc})"
                continue
            wrong = sum(1 for key, row in primary.items() if rows.get(key) != row)
            if wrong:
                pending[replica] = f"{wrong} of {len(primary)} sampled rows missing or different"
            else:
                del pending[replica]
        if not pending or time.monotonic() + poll_s > deadline:
            break
        sleep(poll_s)
    lagging = tuple(f"replica {r} of {table}: {why}" for r, why in sorted(pending.items()))
    return ReplicaCheck(replicas, len(primary), time.monotonic() - started, lagging)


async def replicas_problem(
    predictions: PredictionStore,
    table: str,
    signature: Signature,
    salt_buckets: int,
    replicas: int,
    *,
    wait_s: float = REPLICA_WAIT_S,
) -> tuple[str | None, dict[str, float]]:
    """The replica gate of a written, verified table, for any engine that makes one: why the
    version may not become READY (None: every replica serves it, or there are none) and the
    metrics to record."""
    if replicas <= 1:
        return None, {}
    found = await asyncio.to_thread(
        check_replicas,
        predictions,
        table,
        replicas,
        sample_keys(signature, salt_buckets),
        wait_s=wait_s,
    )
    metrics = {"replica_sample": float(found.sampled), "replica_wait_s": round(found.waited_s, 3)}
    if found.ok:
        return None, metrics
    reason = f"region replicas do not serve the table after {found.waited_s:.0f}s: " + "; ".join(
        found.lagging
    )
    return reason, metrics
