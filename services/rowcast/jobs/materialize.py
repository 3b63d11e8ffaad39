"""Flatten a model: evaluate it on every cell of its grid and write the answers to its table.

The grid is walked in chunks of flat cell indices (`numpy.unravel_index`), so memory stays flat
in the grid size. Writes are idempotent (same key, same timestamp), so a rerun after a crash
rewrites cells rather than duplicating them. The version only becomes READY once its table
holds exactly the grid's row count; a crash leaves it MATERIALIZING, a failure FAILED, and the
active version is never touched.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np

from rowcast.core.keys import prediction_key
from rowcast.core.records import VersionInfo, VersionState
from rowcast.core.signature import Signature
from rowcast.errors import InvalidArgument
from rowcast.jobs.train import predict_cells
from rowcast.store.admin import TableAdmin
from rowcast.store.predictions import PredictionStore
from rowcast.store.registry import RegistryStore
from rowcast.store.schema import create_prediction_table

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class MaterializeResult:
    table: str
    rows_written: int
    row_count: int
    checksum: int


def grid_chunks(signature: Signature, chunk: int) -> Iterator[np.ndarray]:
    """Bins of every grid cell, `chunk` cells at a time, shape (n, features)."""
    shape = signature.cardinalities
    total = signature.grid_size
    for start in range(0, total, chunk):
        flat = np.arange(start, min(start + chunk, total), dtype=np.int64)
        yield np.column_stack(np.unravel_index(flat, shape)).astype(np.int64)


def check_grid(signature: Signature, max_rows: int) -> None:
    if signature.grid_size > max_rows:
        raise InvalidArgument.field(
            "signature",
            f"grid has {signature.grid_size:,} cells, more than the limit of {max_rows:,}",
        )


async def materialize(
    *,
    registry: RegistryStore,
    predictions: PredictionStore,
    admin: TableAdmin,
    version: VersionInfo,
    signature: Signature,
    booster: lgb.Booster,
    metrics: dict[str, float],
    salt_buckets: int,
    max_grid_rows: int,
    chunk: int = 5_000,
    progress: Progress | None = None,
) -> MaterializeResult:
    """Write the version's table, verify its row count, and mark it READY (or FAILED)."""
    check_grid(signature, max_rows=max_grid_rows)
    table = create_prediction_table(admin, version.model, version.version, salt_buckets)
    await registry.update_version(version.model, version.version, state=VersionState.MATERIALIZING)
    total = signature.grid_size
    written = 0
    checksum = 0
    try:
        for bins in grid_chunks(signature, chunk):
            outputs = predict_cells(booster, signature, bins)
            rows = [
                (prediction_key(cell, salt_buckets), float(out))
                for cell, out in zip(bins.tolist(), outputs.tolist(), strict=True)
            ]
            # Order-independent checksum of (key, output) pairs, for later verification.
            for key, out in rows:
                checksum ^= zlib.crc32(key + repr(out).encode())
            written += predictions.write(table, rows, version.version)
            if progress is not None:
                progress(written, total)
        stored = predictions.count(table)
    except BaseException:
        await registry.update_version(version.model, version.version, state=VersionState.FAILED)
        raise
    if stored != total:
        await registry.update_version(
            version.model, version.version, state=VersionState.FAILED, row_count=stored
        )
        raise RuntimeError(f"table {table} holds {stored} rows, the grid has {total}")
    await registry.update_version(
        version.model,
        version.version,
        state=VersionState.READY,
        row_count=stored,
        metrics={**metrics, "checksum": float(checksum)},
    )
    return MaterializeResult(table, written, stored, checksum)
