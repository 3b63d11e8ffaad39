"""The verification gate: a version becomes READY only if its table provably holds the model.

Two checks decide: (a) a key-only scan counts exactly the grid's cells (scanned per salt
bucket in parallel), and (b) a seeded random sample of grid cells, re-scored with the booster
loaded from the model file, equals the stored outputs bit for bit. Exact equality is the right
test, not a tolerance: a cell's output is one deterministic tree walk per row, and LightGBM
gives bit-identical results whatever the thread count, batch composition or whether the booster
was loaded from its saved file (checked on LightGBM 4.7; tests/unit/test_materialize_keys.py,
`test_scores_are_bit_identical_across_threads_batches_and_the_saved_file`, keeps checking it).
The sample's seed is recorded in the metrics (`verified_sample_seed`) so that a failed check
can be re-run on the same cells.

Beside the verdict it measures the flattening fidelity with real table lookups: held-out rows
are binned, their keys fetched from the version table with multi-gets, and the metric of those
answers (AUC for probabilities, RMSE for regressions) is recorded beside the raw model's and the
locally computed flattened one (a cross-check: the two flattened figures must agree).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final

import lightgbm as lgb
import numpy as np
import pandas as pd

from rowcast.config import HBaseSettings
from rowcast.core.keys import key_matrix, salt_ranges, split_rows
from rowcast.core.records import OutputKind, PredictionRow
from rowcast.core.signature import Signature
from rowcast.jobs.train import bin_frame, encode_matrix, metric
from rowcast.jobs.workers import cell_bins, count_range, score
from rowcast.store.predictions import PredictionStore
from rowcast.telemetry.domain import VERIFICATION

#: Grid cells re-scored by default.
DEFAULT_SAMPLE: Final = 1_000
#: Keys per multi-get (one Thrift getRows call).
LOOKUP_BATCH: Final = 1_000
#: Deadline of one multi-get, seconds.
LOOKUP_TIMEOUT_S: Final = 30.0


@dataclass(frozen=True)
class HeldOut:
    """Held-out rows with their labels, for the flattening fidelity."""

    frame: pd.DataFrame
    target: str
    kind: OutputKind = OutputKind.PROBABILITY


@dataclass(frozen=True)
class Verification:
    """The gate's verdict and the figures behind it."""

    row_count: int
    grid_size: int
    sampled: int
    mismatched: int
    missing: int
    problems: tuple[str, ...]
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def reason(self) -> str:
        """Why the version failed, for its registry row (empty when it passed)."""
        return "; ".join(self.problems)

    @property
    def outcome(self) -> str:
        """The verdict as one bounded label: `passed`, or `failed_` and the first check that
        failed, in the order they run (row count, sample, held-out fidelity)."""
        if self.ok:
            return "passed"
        if self.row_count != self.grid_size:
            return "failed_row_count"
        if self.missing:
            return "failed_missing_cells"
        if self.mismatched:
            return "failed_mismatched_cells"
        return "failed_heldout"


def sample_cells(grid_size: int, size: int, seed: int) -> np.ndarray:
    """`size` distinct flat grid indices (all of them for a small grid), seeded, sorted."""
    rng = np.random.default_rng(seed)
    if size >= grid_size:
        return np.arange(grid_size, dtype=np.int64)
    return np.sort(rng.choice(grid_size, size=size, replace=False).astype(np.int64))


async def count_rows(
    hbase: HBaseSettings, table: str, salt_buckets: int, executor: Executor | None = None
) -> int:
    """Rows of the table, counted by key-only scans of every salt bucket in parallel."""
    loop = asyncio.get_running_loop()
    own = executor is None
    pool = executor or ThreadPoolExecutor(max_workers=4, thread_name_prefix="count")
    try:
        counts = await asyncio.gather(
            *(
                loop.run_in_executor(pool, count_range, hbase, table, start, stop)
                for start, stop in salt_ranges(salt_buckets)
            )
        )
    finally:
        if own:
            pool.shutdown(wait=False)
    return sum(counts)


async def lookup(
    predictions: PredictionStore, table: str, keys: Sequence[bytes]
) -> dict[bytes, PredictionRow]:
    """Stored rows of distinct keys, by multi-get batches; absent keys are absent."""
    found: dict[bytes, PredictionRow] = {}
    for i in range(0, len(keys), LOOKUP_BATCH):
        found.update(
            await predictions.get_many(
                table, keys[i : i + LOOKUP_BATCH], timeout_s=LOOKUP_TIMEOUT_S
            )
        )
    return found


def compare(
    keys: Sequence[bytes], expected: np.ndarray, stored: dict[bytes, PredictionRow], version: int
) -> tuple[int, int]:
    """(mismatched, missing): cells whose stored output or version differs, cells absent."""
    mismatched = missing = 0
    for key, want in zip(keys, expected.tolist(), strict=True):
        row = stored.get(key)
        if row is None:
            missing += 1
        elif row.output != want or row.version != version:
            mismatched += 1
    return mismatched, missing


async def table_fidelity(
    predictions: PredictionStore,
    table: str,
    version: int,
    signature: Signature,
    salt_buckets: int,
    booster: lgb.Booster,
    heldout: HeldOut,
) -> tuple[dict[str, float], list[str]]:
    """The model's metric on held-out rows: raw, from table lookups, and flattened locally."""
    y = heldout.frame[heldout.target].to_numpy()
    bins = bin_frame(signature, heldout.frame)
    keys = split_rows(key_matrix(bins, salt_buckets))
    local = score(booster, signature, bins)
    distinct = sorted(set(keys))
    stored = await lookup(predictions, table, distinct)
    problems: list[str] = []
    missing = sum(1 for k in distinct if k not in stored)
    if missing:
        problems.append(f"{missing} of {len(distinct)} held-out cells are missing from {table}")
        return {"heldout_rows": float(len(y)), "heldout_missing": float(missing)}, problems
    looked_up = np.array([stored[k].output for k in keys], dtype=np.float64)
    differ = int(np.count_nonzero(looked_up != local))
    if differ:
        problems.append(f"{differ} held-out lookups differ from the model's flattened output")
    foreign = sum(1 for k in distinct if stored[k].version != version)
    if foreign:
        problems.append(f"{foreign} held-out cells carry another version than {version}")
    raw = np.asarray(booster.predict(encode_matrix(signature, heldout.frame), num_threads=1))
    name, raw_value = metric(heldout.kind, y, raw)
    _, table_value = metric(heldout.kind, y, looked_up)
    _, local_value = metric(heldout.kind, y, local)
    metrics = {
        f"{name}_raw": raw_value,
        f"{name}_table": table_value,
        f"{name}_flattened": local_value,
        "heldout_rows": float(len(y)),
        "heldout_cells": float(len(distinct)),
    }
    return metrics, problems


async def verify(
    *,
    predictions: PredictionStore,
    hbase: HBaseSettings,
    table: str,
    version: int,
    signature: Signature,
    salt_buckets: int,
    booster: lgb.Booster,
    seed: int,
    sample_size: int = DEFAULT_SAMPLE,
    heldout: HeldOut | None = None,
    executor: Executor | None = None,
) -> Verification:
    """Run every check (none short-circuits, so the reason names every problem found). `seed`
    picks the sampled cells; the caller draws it (fresh per run) and it is in the metrics."""
    grid = signature.grid_size
    problems: list[str] = []
    row_count = await count_rows(hbase, table, salt_buckets, executor)
    if row_count != grid:
        problems.append(f"table {table} holds {row_count:,} rows, the grid has {grid:,}")
    flat = sample_cells(grid, sample_size, seed)
    bins = cell_bins(signature.cardinalities, flat)
    keys = split_rows(key_matrix(bins, salt_buckets))
    expected = score(booster, signature, bins)
    mismatched, missing = compare(keys, expected, await lookup(predictions, table, keys), version)
    if missing:
        problems.append(f"{missing} of {len(keys)} sampled cells are missing")
    if mismatched:
        problems.append(f"{mismatched} of {len(keys)} sampled cells differ from the model")
    metrics: dict[str, float] = {
        "verified_sample": float(len(keys)),
        "verified_sample_seed": float(seed),
    }
    if heldout is not None:
        fidelity, fidelity_problems = await table_fidelity(
            predictions, table, version, signature, salt_buckets, booster, heldout
        )
        metrics.update(fidelity)
        problems.extend(fidelity_problems)
    verdict = Verification(
        row_count, grid, len(keys), mismatched, missing, tuple(problems), metrics
    )
    VERIFICATION.labels(verdict.outcome).inc()
    return verdict
