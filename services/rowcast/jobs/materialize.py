"""Flatten a model: score every cell of its grid in worker processes, write the answers to the
version's table, verify the table, and mark the version READY or FAILED.

The pipeline streams: this process hands out chunk ranges (flat grid indices) to spawned
workers (`rowcast.jobs.workers`), at most `workers * in_flight_per_worker` at a time, paced by
a token bucket; each worker scores its chunk and writes it in one mutateRows call. Nothing
here holds more than the bounded window of chunk numbers, so memory is flat in the grid size.

Progress is a watermark: the flat index below which every cell is acknowledged by HBase.
Chunks finish out of order, so the watermark is the end of the lowest contiguous run of done
chunks; it is checkpointed in the version's registry row about every second. A resumed run
starts at the watermark and rewrites whatever was in flight: writes are idempotent (same key,
same cell timestamp), so nothing is lost and nothing duplicated.

States: MATERIALIZING while writing. A cancel, a store outage or a cancelled task leaves it
MATERIALIZING (resumable: the checkpoint is where it stopped). Any other error, or a table that
fails verification (`rowcast.jobs.verify`), makes it FAILED with the reason recorded. Only a
verified table becomes READY. The active version is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

import lightgbm as lgb
import numpy as np

from rowcast.config import HBaseSettings
from rowcast.core.ratelimit import TokenBucket
from rowcast.core.records import VersionInfo, VersionState
from rowcast.core.signature import Signature
from rowcast.errors import FailedPrecondition, InvalidArgument, StoreUnavailable, VerificationFailed
from rowcast.jobs import replicas
from rowcast.jobs.replicas import replicas_problem
from rowcast.jobs.spark.options import SparkOptions
from rowcast.jobs.verify import (
    DEFAULT_SAMPLE,
    HeldOut,
    Verification,
    verify,
)
from rowcast.jobs.workers import (
    ChunkDriver,
    Watermark,
    WorkerConfig,
    grid_bins,
    spawn_pool,
    warm_up,
)
from rowcast.store.admin import DDL_TIMEOUT_S, TableAdmin
from rowcast.store.predictions import PredictionStore
from rowcast.store.registry import Registry
from rowcast.store.schema import create_prediction_table

Progress = Callable[[int, int], None]

#: Under a rate limit chunks shrink to about this many seconds of the allowed rate, so that the
#: job writes small batches often instead of large bursts that queue behind serving reads.
PACED_CHUNK_S: Final = 0.25
MIN_PACED_CHUNK: Final = 500


class MaterializeCancelled(Exception):
    """Materialisation stopped on request after `rows_done` rows; the version stays
    MATERIALIZING and a run with `resume=True` continues from there.

    Not a RowcastError: a cancel is an outcome the caller asked for, not a failure to map.
    """

    def __init__(self, rows_done: int) -> None:
        super().__init__(f"materialisation cancelled after {rows_done:,} rows; resumable")
        self.rows_done = rows_done


@dataclass(frozen=True)
class MaterializeOptions:
    """How a materialisation runs: parallelism, batching, pacing and the verification sample."""

    #: Worker processes that score and write chunks.
    workers: int = 2
    #: Grid cells per chunk = rows per mutateRows call.
    chunk_rows: int = 10_000
    #: Chunks handed to each worker ahead of time (the bounded queue between the stages).
    in_flight_per_worker: int = 2
    #: Rows written per second at most; None writes as fast as HBase takes them.
    rows_per_second: float | None = None
    #: Grid cells re-scored by the verification gate, and the seed that picks them. None (the
    #: default) draws a fresh seed for every run, so that successive versions (and successive
    #: runs of one version) check different cells; the seed used is recorded in the version's
    #: metrics as `verified_sample_seed` (and in the failure reason), so that a failed check
    #: can be reproduced by passing it here.
    sample_size: int = DEFAULT_SAMPLE
    sample_seed: int | None = None
    #: How often the watermark is written to the registry, seconds.
    checkpoint_every_s: float = 1.0

    def paced_chunk(self) -> int:
        """Chunk size under the rate limit: a fraction of a second of rows, within bounds."""
        if self.rows_per_second is None:
            return self.chunk_rows
        paced = int(self.rows_per_second * PACED_CHUNK_S)
        return max(1, min(self.chunk_rows, max(MIN_PACED_CHUNK, paced)))


@dataclass(frozen=True)
class MaterializeResult:
    """What a completed materialisation wrote and what the verification gate found."""

    table: str
    #: Rows written by this run (a resumed run writes only what was left).
    rows_written: int
    #: Rows counted in the table by verification.
    row_count: int
    #: Table digest of the whole grid as written (`rowcast.core.keys`: a sum of keyed hashes
    #: of key || value, independent of write order); the scan at verification matched it.
    digest: int
    verification: Verification | None = None
    #: Seconds spent writing (this run, after the workers were up), and the resulting rate.
    write_s: float = 0.0
    #: Seconds to start the worker processes and load the model in each.
    startup_s: float = 0.0
    #: Seconds the verification gate took.
    verify_s: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows_written / self.write_s if self.write_s > 0 else 0.0


def sample_seed(opts: MaterializeOptions) -> int:
    """The verification sample's seed: the given one, or a fresh random one (32 bits, so that
    it is exact as a float metric)."""
    if opts.sample_seed is not None:
        return opts.sample_seed
    return secrets.randbits(32)


def grid_chunks(signature: Signature, chunk: int) -> Iterator[np.ndarray]:
    """Bins of every grid cell, `chunk` cells at a time, shape (n, features)."""
    for start in range(0, signature.grid_size, chunk):
        yield grid_bins(signature.cardinalities, start, min(start + chunk, signature.grid_size))


def check_grid(signature: Signature, max_rows: int) -> None:
    if signature.grid_size > max_rows:
        raise InvalidArgument.field(
            "signature",
            f"grid has {signature.grid_size:,} cells, more than the limit of {max_rows:,}",
        )


@contextlib.contextmanager
def _model_path(model_file: Path | None, booster: lgb.Booster | None) -> Iterator[Path]:
    """The model file the workers load: the given one, or the booster saved to a temp file."""
    if model_file is not None:
        yield Path(model_file)
        return
    if booster is None:
        raise ValueError("materialize needs model_file or booster")
    with tempfile.TemporaryDirectory(prefix="rowcast-model-") as tmp:
        path = Path(tmp) / "model.txt"
        booster.save_model(str(path))
        yield path


async def materialize(
    *,
    registry: Registry,
    predictions: PredictionStore,
    admin: TableAdmin,
    version: VersionInfo,
    signature: Signature,
    metrics: dict[str, float],
    salt_buckets: int,
    max_grid_rows: int,
    hbase: HBaseSettings,
    booster: lgb.Booster | None = None,
    model_file: Path | None = None,
    chunk: int | None = None,
    progress: Progress | None = None,
    resume: bool = False,
    cancel: threading.Event | None = None,
    rows_per_second: float | None = None,
    options: MaterializeOptions | None = None,
    heldout: HeldOut | None = None,
    timeout_s: float,
    spark: SparkOptions | None = None,
) -> MaterializeResult:
    """Write the version's table, verify it, and mark the version READY (or FAILED).

    The grid is checked against `max_grid_rows` before anything is written. Workers load the
    model from `model_file` (or from `booster`, saved to a temporary file). With `resume`, the
    run continues from the version's checkpointed watermark. `cancel` stops it after the chunks
    in flight (MaterializeCancelled). `progress(rows_done, total)` is called at least every
    second from the event loop's thread. `chunk` and `rows_per_second` override `options`;
    `hbase` is where the workers connect (each opens its own connections). Each store call
    of the run (a state change, the table's creation, a checkpoint) ends within `timeout_s`,
    creating the table within `DDL_TIMEOUT_S` if that is longer; the run itself takes as long
    as the grid does.
    """
    check_grid(signature, max_rows=max_grid_rows)
    if version.state not in (VersionState.REGISTERED, VersionState.MATERIALIZING):
        raise FailedPrecondition(
            f"version {version.version} of {version.model!r} is {version.state.value}; only a "
            "REGISTERED or MATERIALIZING version can be materialised"
        )
    opts = options or MaterializeOptions()
    if chunk is not None:
        opts = replace(opts, chunk_rows=chunk)
    if rows_per_second is not None:
        opts = replace(opts, rows_per_second=rows_per_second)
    with _model_path(model_file, booster) as path:
        if spark is not None:
            # The Spark engine (rowcast.jobs.spark): HFiles and a bulk load, the same gate.
            # Imported here: pyspark is needed only by the runs that use it.
            from rowcast.jobs.spark.engine import materialize_spark

            return await materialize_spark(
                registry=registry,
                predictions=predictions,
                admin=admin,
                hbase=hbase,
                version=version,
                signature=signature,
                salt_buckets=salt_buckets,
                metrics=metrics,
                model_file=path,
                options=opts,
                spark=spark,
                progress=progress,
                cancel=cancel,
                heldout=heldout,
                timeout_s=timeout_s,
            )
        job = _Job(registry, predictions, admin, hbase, version, signature, salt_buckets, timeout_s)
        return await job.run(path, opts, metrics, progress, resume, cancel, heldout)


class _Job:
    """One materialisation run: table, checkpoints, the worker pool, verification, state."""

    def __init__(
        self,
        registry: Registry,
        predictions: PredictionStore,
        admin: TableAdmin,
        hbase: HBaseSettings,
        version: VersionInfo,
        signature: Signature,
        salt_buckets: int,
        timeout_s: float,
    ) -> None:
        self._registry = registry
        self._predictions = predictions
        self._admin = admin
        self._hbase = hbase
        #: Deadline of each store call the job makes (the job itself runs for as long as the
        #: grid takes; each checkpoint or state change is one bounded call).
        self._call_s = timeout_s
        #: createTable returns once the master has assigned every region of the pre-split
        #: table: seconds on a busy cluster, more than one data call may take.
        self._ddl_s = max(timeout_s, DDL_TIMEOUT_S)
        self._model = version.model
        self._number = version.version
        self._signature = signature
        self._buckets = salt_buckets
        self._saved = (0, 0.0)

    async def run(
        self,
        model_file: Path,
        opts: MaterializeOptions,
        metrics: dict[str, float],
        progress: Progress | None,
        resume: bool,
        cancel: threading.Event | None,
        heldout: HeldOut | None,
    ) -> MaterializeResult:
        # Verification re-scores with the very file the workers score with (through its own
        # input path, not theirs).
        booster = await asyncio.to_thread(lgb.Booster, model_file=str(model_file))
        # MATERIALIZING before the table exists: a version retired meanwhile (RETIRED is
        # final) stops us here, before we could create a table its retirement already dropped.
        await self._registry.versions.update_version(
            self._model, self._number, state=VersionState.MATERIALIZING, timeout_s=self._call_s
        )
        table = await asyncio.to_thread(
            create_prediction_table,
            self._admin,
            self._model,
            self._number,
            self._buckets,
            self._signature,
            timeout_s=self._ddl_s,
        )
        mark = await self._watermark(resume, opts.paced_chunk())
        total = mark.total

        async def tick() -> None:
            # Progress first: a slow checkpoint put must not delay the caller's report.
            if progress is not None:
                progress(mark.rows_done, total)
            if time.monotonic() - self._saved[1] >= opts.checkpoint_every_s:
                await self._checkpoint(mark)

        config = WorkerConfig(
            self._hbase, table, self._number, self._signature, self._buckets, model_file
        )
        pool = spawn_pool(config, opts.workers)
        warm = time.monotonic()
        try:
            await warm_up(pool, opts.workers)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        startup_s = time.monotonic() - warm
        driver = ChunkDriver(
            pool,
            mark,
            opts.workers * opts.in_flight_per_worker,
            TokenBucket(opts.rows_per_second, burst=opts.paced_chunk()),
            cancel,
            tick,
        )
        started = time.monotonic()
        try:
            try:
                finished = await driver.run()
            finally:
                # Also after an error: what was acknowledged before it is kept for a resume.
                with contextlib.suppress(StoreUnavailable):
                    await self._checkpoint(mark)
            write_s = time.monotonic() - started
            if progress is not None:
                progress(mark.rows_done, total)
            if not finished:
                raise MaterializeCancelled(mark.rows_done)
            verify_started = time.monotonic()
            seed = sample_seed(opts)
            verdict = await verify(
                predictions=self._predictions.strong(),
                hbase=config.hbase,
                table=table,
                version=self._number,
                signature=self._signature,
                salt_buckets=self._buckets,
                booster=booster,
                sample_size=opts.sample_size,
                seed=seed,
                heldout=heldout,
                executor=pool,
                digest=mark.digest,
            )
            verify_s = time.monotonic() - verify_started
        except asyncio.CancelledError:
            # The task is going away: nobody waits for the workers' last chunks.
            driver.abandon()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        except (MaterializeCancelled, StoreUnavailable):
            # Resumable: the version stays MATERIALIZING at its last checkpoint.
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)
            raise
        except BaseException as exc:
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)
            await self._fail(f"{type(exc).__name__}: {exc}"[:1000], None)
            raise
        await asyncio.to_thread(pool.shutdown, True)
        if not verdict.ok:
            reason = f"{verdict.reason} (verification sample seed {seed})"
            await self._fail(reason, verdict.row_count, {**metrics, **verdict.metrics})
            raise VerificationFailed(
                f"version {self._number} of {self._model!r} failed verification: {reason}"
            )
        if self._hbase.region_replication > 1:
            await self._check_replicas(table, verdict, metrics)
        await self._registry.versions.update_version(
            self._model,
            self._number,
            state=VersionState.READY,
            row_count=verdict.row_count,
            metrics={**metrics, **verdict.metrics},
            failure_reason="",
            timeout_s=self._call_s,
        )
        return MaterializeResult(
            table,
            driver.rows_written,
            verdict.row_count,
            mark.digest,
            verdict,
            write_s,
            startup_s,
            verify_s,
        )

    async def _check_replicas(
        self, table: str, verdict: Verification, metrics: dict[str, float]
    ) -> None:
        """The replica gate (jobs/replicas.py): FAILED unless every secondary serves the
        sampled rows in time. A store outage leaves the version MATERIALIZING (resumable)."""
        reason, found = await replicas_problem(
            self._predictions,
            table,
            self._signature,
            self._buckets,
            self._hbase.region_replication,
            wait_s=replicas.REPLICA_WAIT_S,
        )
        metrics.update(found)
        if reason is not None:
            await self._fail(reason, verdict.row_count, {**metrics, **verdict.metrics})
            raise VerificationFailed(f"version {self._number} of {self._model!r}: {reason}")

    async def _watermark(self, resume: bool, chunk_rows: int) -> Watermark:
        total = self._signature.grid_size
        if resume:
            info = await self._registry.versions.get_version(
                self._model, self._number, timeout_s=self._call_s
            )
            # The digest of the cells below the checkpoint, as the earlier run summed it.
            start, digest = info.rows_written, info.checksum_done
        else:
            # A fresh run: forget any progress an earlier run of this version left behind.
            start, digest = 0, 0
            await self._registry.versions.update_progress(
                self._model, self._number, 0, 0, timeout_s=self._call_s
            )
        mark = Watermark(min(start, total), total, chunk_rows, digest)
        self._saved = (mark.rows_done, time.monotonic())
        return mark

    async def _checkpoint(self, mark: Watermark) -> None:
        if mark.rows_done != self._saved[0]:
            await self._registry.versions.update_progress(
                self._model, self._number, mark.rows_done, mark.digest, timeout_s=self._call_s
            )
        self._saved = (mark.rows_done, time.monotonic())

    async def _fail(
        self, reason: str, row_count: int | None, metrics: dict[str, float] | None = None
    ) -> None:
        # Best effort: when HBase itself is what failed, the version stays MATERIALIZING.
        with contextlib.suppress(StoreUnavailable):
            await self._registry.versions.update_version(
                self._model,
                self._number,
                state=VersionState.FAILED,
                row_count=row_count,
                metrics=metrics,
                failure_reason=reason,
                timeout_s=self._call_s,
            )
