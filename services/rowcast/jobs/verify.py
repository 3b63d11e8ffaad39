"""The verification gate: a version becomes READY only if its table provably holds the model.

Four checks decide, each on its own (none short-circuits, so the reason names every problem):

(a) the table holds exactly the grid's rows, and (b) its digest, recomputed by a scan of
    every output cell (one scan per salt bucket, in parallel), equals the digest the writers
    computed while writing (`rowcast.core.keys`: a sum of keyed hashes of key || value, so a
    row lost, added, changed or moved to another key changes it);
(c) a seeded random sample of grid cells, re-scored apart from the writer, equals the values a
    real lookup reads back, bit for bit: each cell's raw representative values (numbers,
    category names) go into a pandas frame whose categorical columns carry the model file's own
    categories, through LightGBM's pandas input path (`booster.predict(frame)`), while the
    writer fed codes it derived itself (`rowcast.jobs.modelfile.Encoding`); each cell's key
    is built by `prediction_key`, the serving path's layout, not the writer's vectorised one,
    and read with a multi-get. Exact equality is the right test, not a tolerance: a cell's
    output is one deterministic tree walk, and LightGBM gives bit-identical results whatever
    the thread count, batch composition, input path or whether the booster was reloaded from
    its file (tests/unit/test_materialize_keys.py and test_materialize_gate.py keep checking
    it). The sample's seed is recorded (`verified_sample_seed`) so that a failed check can be
    re-run on the same cells;
(d) when the version names an evaluation data set, its held-out rows are binned and looked up
    in the table, and the metric of those answers (AUC for probabilities, RMSE for regressions)
    may be worse than the raw model's by at most the configured limit
    (`Settings.max_fidelity_drop`, ROWCAST_MAX_FIDELITY_DROP). The raw, table and locally
    flattened figures are recorded (the two flattened figures must agree).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

import lightgbm as lgb
import numpy as np
import pandas as pd

from rowcast.config import FidelityDrop, HBaseSettings
from rowcast.core.keys import key_matrix, prediction_key, salt_ranges, split_rows
from rowcast.core.records import OutputKind, PredictionRow
from rowcast.core.signature import CategoricalFeature, NumericFeature, Signature
from rowcast.jobs.train import bin_frame, metric
from rowcast.jobs.workers import cell_bins, digest_range, score
from rowcast.store.protocols import PredictionReader
from rowcast.telemetry.domain import VERIFICATION

#: Grid cells re-scored by default.
DEFAULT_SAMPLE: Final = 1_000
#: Keys per multi-get (one Thrift getRows call).
LOOKUP_BATCH: Final = 1_000
#: Deadline of one multi-get, seconds.
LOOKUP_TIMEOUT_S: Final = 30.0


@dataclass(frozen=True)
class HeldOut:
    """Held-out rows with their labels, for the flattening fidelity, and how much worse the
    table may answer them than the raw model."""

    frame: pd.DataFrame
    target: str
    kind: OutputKind = OutputKind.PROBABILITY
    max_drop: FidelityDrop = field(default_factory=FidelityDrop)


@dataclass(frozen=True)
class TableScan:
    """What a scan of the whole table found: the rows holding an output and their digest."""

    rows: int
    digest: int


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
    #: Whether the scanned digest equals the written one (True when none was given).
    digest_ok: bool = True

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
        failed, in the order they run (row count, digest, sample, held-out fidelity)."""
        if self.ok:
            return "passed"
        if self.row_count != self.grid_size:
            return "failed_row_count"
        if not self.digest_ok:
            return "failed_digest"
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


async def scan_table(
    hbase: HBaseSettings, table: str, salt_buckets: int, executor: Executor | None = None
) -> TableScan:
    """Rows and digest of the whole table, by a scan of every salt bucket in parallel."""
    loop = asyncio.get_running_loop()
    own = executor is None
    pool = executor or ThreadPoolExecutor(max_workers=4, thread_name_prefix="scan")
    try:
        parts = await asyncio.gather(
            *(
                loop.run_in_executor(pool, digest_range, hbase, table, start, stop)
                for start, stop in salt_ranges(salt_buckets)
            )
        )
    finally:
        if own:
            pool.shutdown(wait=False)
    return TableScan(sum(rows for rows, _ in parts), sum(d for _, d in parts) % 2**64)


async def lookup(
    predictions: PredictionReader, table: str, keys: Sequence[bytes]
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


# --- The booster through its own input path -----------------------------------------------


def file_categories(booster: lgb.Booster, signature: Signature) -> list[list[Any]]:
    """The category lists of the booster's file, one per categorical feature in order, as
    LightGBM read them (`pandas_categorical`); a file without them was trained on vocabulary
    positions, which is the vocabulary as its category list."""
    recorded = booster.pandas_categorical
    if recorded is not None:
        return [list(c) for c in recorded]
    return [list(f.vocabulary) for f in signature.features if isinstance(f, CategoricalFeature)]


def model_frame(
    booster: lgb.Booster, signature: Signature, columns: Mapping[str, Sequence[Any]]
) -> pd.DataFrame:
    """A pandas frame of raw values as LightGBM's pandas path expects it: numeric columns as
    floats, categorical columns as pandas categoricals over the file's own categories (a
    value the file does not know, or None, is missing)."""
    categorical = [f.name for f in signature.features if isinstance(f, CategoricalFeature)]
    lists = dict(zip(categorical, file_categories(booster, signature), strict=True))
    data: dict[str, Any] = {}
    for f in signature.features:
        values = columns[f.name]
        if isinstance(f, NumericFeature):
            data[f.name] = np.asarray(values, dtype=np.float64)
        else:
            categories = lists[f.name]
            # The file may hold numbers as categories; raw values and vocabularies are text.
            by_text = {str(c): c for c in categories}
            data[f.name] = pd.Categorical(
                [None if v is None else by_text.get(str(v)) for v in values],
                categories=categories,
            )
    return pd.DataFrame(data)


def representative_columns(signature: Signature, bins: np.ndarray) -> dict[str, list[Any]]:
    """Raw representative values of grid cells, per feature: a numeric bin's representative,
    a category's name (None for the out-of-vocabulary bin)."""
    columns: dict[str, list[Any]] = {}
    for j, f in enumerate(signature.features):
        if isinstance(f, NumericFeature):
            columns[f.name] = [f.representatives[b] for b in bins[:, j].tolist()]
        else:
            vocabulary = f.vocabulary
            columns[f.name] = [
                vocabulary[b] if b < len(vocabulary) else None for b in bins[:, j].tolist()
            ]
    return columns


def rescore(booster: lgb.Booster, signature: Signature, bins: np.ndarray) -> np.ndarray:
    """The booster's answers for grid cells, apart from the writer's code: raw representative
    values through LightGBM's pandas input path."""
    frame = model_frame(booster, signature, representative_columns(signature, bins))
    return np.asarray(booster.predict(frame, num_threads=1), dtype=np.float64)


def raw_scores(booster: lgb.Booster, signature: Signature, frame: pd.DataFrame) -> np.ndarray:
    """The raw model's answers for data-set rows (categories by name), by the pandas path."""
    columns: dict[str, Sequence[Any]] = {
        f.name: (
            frame[f.name].to_numpy(dtype=float).tolist()
            if isinstance(f, NumericFeature)
            else frame[f.name].astype(str).tolist()
        )
        for f in signature.features
    }
    frame_in = model_frame(booster, signature, columns)
    return np.asarray(booster.predict(frame_in, num_threads=1), dtype=np.float64)


# --- (d) held-out fidelity ------------------------------------------------------------------


async def table_fidelity(
    predictions: PredictionReader,
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
    raw = raw_scores(booster, signature, heldout.frame)
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


def fidelity_drop(
    kind: OutputKind, metrics: Mapping[str, float], limit: FidelityDrop
) -> tuple[float, str | None]:
    """(drop, problem): how much worse the table answers than the raw model (AUC points, or
    RMSE's relative rise) and why that is refused (None within the limit)."""
    if kind is OutputKind.PROBABILITY:
        raw, table = metrics["auc_raw"], metrics["auc_table"]
        drop = raw - table
        if drop > limit.auc:
            return drop, (
                f"held-out AUC drops from {raw:.4f} (raw model) to {table:.4f} (table): "
                f"{drop:.4f}, more than the allowed {limit.auc:g} (ROWCAST_MAX_FIDELITY_DROP; "
                "finer bins flatten the model more faithfully)"
            )
        return drop, None
    raw, table = metrics["rmse_raw"], metrics["rmse_table"]
    rise = (table - raw) / raw if raw > 0 else (0.0 if table <= raw else math.inf)
    if rise > limit.rmse:
        return rise, (
            f"held-out RMSE rises from {raw:.6g} (raw model) to {table:.6g} (table): "
            f"{rise:.1%}, more than the allowed {limit.rmse:.0%} (ROWCAST_MAX_FIDELITY_DROP; "
            "finer bins flatten the model more faithfully)"
        )
    return rise, None


async def verify(
    *,
    predictions: PredictionReader,
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
    digest: int | None = None,
) -> Verification:
    """Scan the table (on `executor`'s workers when given), then run every check (`check`).
    `digest` is what the writers computed (None skips that comparison: a re-verification
    without the run's record)."""
    scanned = await scan_table(hbase, table, salt_buckets, executor)
    return await check(
        predictions=predictions,
        table=table,
        version=version,
        signature=signature,
        salt_buckets=salt_buckets,
        booster=booster,
        seed=seed,
        scanned=scanned,
        digest=digest,
        sample_size=sample_size,
        heldout=heldout,
    )


async def check(
    *,
    predictions: PredictionReader,
    table: str,
    version: int,
    signature: Signature,
    salt_buckets: int,
    booster: lgb.Booster,
    seed: int,
    scanned: TableScan,
    digest: int | None,
    sample_size: int = DEFAULT_SAMPLE,
    heldout: HeldOut | None = None,
) -> Verification:
    """Every check on a scanned table (none short-circuits, so the reason names every problem
    found). `seed` picks the sampled cells; the caller draws it (fresh per run) and it is in
    the metrics."""
    grid = signature.grid_size
    problems: list[str] = []
    if scanned.rows != grid:
        problems.append(f"table {table} holds {scanned.rows:,} rows, the grid has {grid:,}")
    digest_ok = digest is None or scanned.digest == digest
    if not digest_ok:
        problems.append(
            f"table digest {scanned.digest:016x} (scanned) differs from {digest:016x} (written): "
            "rows were lost, added, changed or moved between keys"
        )
    flat = sample_cells(grid, sample_size, seed)
    bins = cell_bins(signature.cardinalities, flat)
    keys = [prediction_key(row, salt_buckets) for row in bins.tolist()]
    expected = rescore(booster, signature, bins)
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
        if not fidelity_problems:
            drop, problem = fidelity_drop(heldout.kind, fidelity, heldout.max_drop)
            metrics["auc_drop" if heldout.kind is OutputKind.PROBABILITY else "rmse_rise"] = drop
            if problem:
                problems.append(problem)
    verdict = Verification(
        scanned.rows, grid, len(keys), mismatched, missing, tuple(problems), metrics, digest_ok
    )
    VERIFICATION.labels(verdict.outcome).inc()
    return verdict
