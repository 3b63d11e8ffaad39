"""Materialisation operations: started by MaterializeVersion, run in this ModelService process,
reported in HBase (so any replica can Get/Watch/Cancel them)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import lightgbm as lgb
from google.rpc import code_pb2

from rowcast.config import Settings
from rowcast.core.keys import new_decision_id
from rowcast.core.records import VersionState
from rowcast.core.signature import Signature
from rowcast.deadlines import Budget
from rowcast.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RowcastError,
    StoreUnavailable,
)
from rowcast.jobs import materialize as mat
from rowcast.jobs.create import heldout_for
from rowcast.jobs.dataset import Catalog
from rowcast.jobs.spark.options import SparkOptions
from rowcast.jobs.verify import HeldOut
from rowcast.store.admin import TableAdmin
from rowcast.store.artifacts import ArtifactStore
from rowcast.store.operations import OperationRecord, OperationState, OperationStore
from rowcast.store.predictions import PredictionStore
from rowcast.store.registry import Registry
from rowcast.telemetry.domain import (
    MATERIALIZATIONS_RUNNING,
    MATERIALIZE_ROWS_PER_SECOND,
    MATERIALIZE_ROWS_TOTAL,
    MATERIALIZE_ROWS_WRITTEN,
    expose,
)

log = logging.getLogger(__name__)

#: How often a running operation writes its progress (and reads cancel requests).
REPORT_EVERY_S = 0.5
#: How often WatchOperation re-reads an operation it does not run itself.
WATCH_POLL_S = 0.25


class RateMeter:
    """Recent rows/s from progress samples (a sliding window of a few seconds)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self._window_s = window_s
        self._samples: list[tuple[float, int]] = []

    def add(self, rows: int) -> None:
        now = time.monotonic()
        self._samples.append((now, rows))
        while self._samples and now - self._samples[0][0] > self._window_s:
            self._samples.pop(0)

    def rate(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, r0), (t1, r1) = self._samples[0], self._samples[-1]
        return (r1 - r0) / (t1 - t0) if t1 > t0 else 0.0


def run_rate_limit(requested: float | None, cap: float | None) -> float | None:
    """The rows/s limit of one run: the server's `cap` (`ROWCAST_MATERIALIZE_ROWS_PER_SECOND`;
    None: unlimited) unless the request asks for less. A per-run limit may only lower the
    server's: the cap protects serving latency, so a caller cannot lift it."""
    if requested is None:
        return cap
    if not math.isfinite(requested) or requested <= 0:
        raise InvalidArgument.field(
            "rows_per_second_limit",
            "must be a positive number of rows per second (0: the server's limit), "
            f"got {requested!r}",
        )
    if cap is not None and requested > cap:
        raise InvalidArgument.field(
            "rows_per_second_limit",
            f"{requested:,g} rows/s is above this server's cap of {cap:,g} rows/s "
            "(ROWCAST_MATERIALIZE_ROWS_PER_SECOND); a per-run limit can only lower it: "
            "ask for at most that, or 0 for the server's limit",
        )
    return requested


class Materializations:
    """Starts, reports, watches and cancels materialisation operations."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        predictions: PredictionStore,
        admin: TableAdmin,
        artifacts: ArtifactStore,
        operations: OperationStore,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._predictions = predictions
        self._admin = admin
        self._artifacts = artifacts
        self._operations = operations
        #: Deadline of each store call made outside a request (a running job's own).
        self._call_s = settings.hbase.timeout_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancels: dict[str, threading.Event] = {}
        expose(MATERIALIZATIONS_RUNNING)

    async def start(
        self,
        model: str,
        version: int,
        rows_per_second: float | None,
        *,
        timeout_s: float,
        spark: SparkOptions | None = None,
    ) -> OperationRecord:
        """Start materialising `version` of `model` at `rows_per_second` at most (None: the
        server's limit; more than the server's limit is INVALID_ARGUMENT), on Spark when
        `spark` is given (the limit does not apply to a bulk load). Every check and
        write of the start (the claim, the operation's row) happens within the caller's
        `timeout_s`; the run itself goes on in the background."""
        limit = run_rate_limit(rows_per_second, self._settings.materialize_rows_per_second)
        budget = Budget.of(timeout_s)
        info = await self._registry.versions.get_version(model, version, timeout_s=budget.left_s())
        if info.state not in (VersionState.REGISTERED, VersionState.MATERIALIZING):
            raise FailedPrecondition(
                f"version {version} of {model!r} is {info.state.value}; only a REGISTERED "
                "version (or an interrupted MATERIALIZING one) can be materialised"
            )
        seen = await self._registry.versions.operation_claim(
            model, version, timeout_s=budget.left_s()
        )
        running = await self._live(seen, timeout_s=budget.left_s())
        if running is not None:
            raise FailedPrecondition(
                f"version {version} of {model!r} is being materialised by {running.name}"
            )
        model_info = await self._registry.models.get_model(model, timeout_s=budget.left_s())
        content = await self._artifacts.get(model, version, timeout_s=budget.left_s())
        booster = await asyncio.to_thread(lambda: lgb.Booster(model_str=content.decode()))
        # Fidelity through real lookups of the held-out rows (none when the version names no
        # evaluation data set), within the server's limit on its drop.
        heldout = await asyncio.to_thread(
            heldout_for,
            model_info,
            info,
            Catalog(self._registry.datasets).load,
            self._settings.max_fidelity_drop,
        )
        now = int(time.time() * 1000)
        op_id = new_decision_id(now)
        # Two MaterializeVersion calls racing past the check above: one claim wins.
        if not await self._registry.versions.claim_operation(
            model, version, seen, op_id, timeout_s=budget.left_s()
        ):
            raise FailedPrecondition(
                f"version {version} of {model!r} is being materialised by another request"
            )
        record = await self._operations.create(
            OperationRecord(
                op_id=op_id,
                model=model,
                version=version,
                state=OperationState.RUNNING,
                rows_written=info.rows_written,
                total_rows=model_info.signature.grid_size,
                rows_per_second=0.0,
                eta_seconds=0.0,
                start_time_ms=now,
                update_time_ms=now,
            ),
            timeout_s=budget.left_s(),
        )
        cancel = threading.Event()
        self._cancels[record.op_id] = cancel
        self._tasks[record.op_id] = asyncio.create_task(
            self._run(
                record,
                model_info.signature,
                model_info.salt_buckets,
                booster,
                cancel,
                info.metrics,
                limit,
                heldout,
                spark,
            ),
            name=record.name,
        )
        return record

    async def _run(
        self,
        record: OperationRecord,
        signature: Signature,
        salt_buckets: int,
        booster: lgb.Booster,
        cancel: threading.Event,
        metrics: dict[str, float],
        rows_per_second: float | None,
        heldout: HeldOut | None,
        spark: SparkOptions | None = None,
    ) -> None:
        meter = RateMeter()
        rows = [record.rows_written]
        # The run's series exist while it runs: removed when it ends (the operation keeps
        # the final figures), so a scrape lists exactly the running materialisations.
        series = (record.model, str(record.version))
        written = MATERIALIZE_ROWS_WRITTEN.labels(*series)
        written.set(record.rows_written)
        MATERIALIZE_ROWS_TOTAL.labels(*series).set(record.total_rows)
        rate_now = MATERIALIZE_ROWS_PER_SECOND.labels(*series)
        rate_now.set(0.0)
        MATERIALIZATIONS_RUNNING.inc()

        def progress(done: int, total: int) -> None:  # called on the event loop's thread
            rows[0] = done
            written.set(done)

        async def report() -> None:
            nonlocal record
            while True:
                await asyncio.sleep(REPORT_EVERY_S)
                meter.add(rows[0])
                rate = meter.rate()
                rate_now.set(rate)
                remaining = record.total_rows - rows[0]
                record = replace(
                    record,
                    rows_written=rows[0],
                    rows_per_second=rate,
                    eta_seconds=remaining / rate if rate > 0 else 0.0,
                )
                with contextlib.suppress(RowcastError):
                    seen = await self._operations.report(record, timeout_s=self._call_s)
                    if seen.done:
                        # Declared dead while it could not report (a pause, HBase out of
                        # reach): the operation has ended for everyone and a new one may be
                        # resuming the version, so this run stops at the next chunk boundary.
                        log.warning(
                            "%s ended while running (%s); stopping", seen.name, seen.error_message
                        )
                        cancel.set()
                    elif seen.cancel_requested:
                        cancel.set()

        reporter = asyncio.create_task(report())
        final: OperationRecord
        try:
            version = await self._registry.versions.get_version(
                record.model, record.version, timeout_s=self._call_s
            )
            await mat.materialize(
                registry=self._registry,
                predictions=self._predictions,
                admin=self._admin,
                version=version,
                signature=signature,
                booster=booster,
                hbase=self._settings.hbase,
                metrics=metrics,
                salt_buckets=salt_buckets,
                max_grid_rows=self._settings.max_grid_rows,
                progress=progress,
                # An interrupted run (crash, cancel, outage) continues from its checkpoint.
                resume=version.state is VersionState.MATERIALIZING,
                cancel=cancel,
                rows_per_second=rows_per_second,
                heldout=heldout,
                timeout_s=self._call_s,
                spark=spark,
            )
            final = replace(record, state=OperationState.SUCCEEDED, rows_written=record.total_rows)
        except asyncio.CancelledError:
            final = _ended(
                record,
                OperationState.CANCELLED,
                code_pb2.CANCELLED,
                "the ModelService stopped; resume with MaterializeVersion",
            )
        except mat.MaterializeCancelled as exc:
            final = _ended(
                record,
                OperationState.CANCELLED,
                code_pb2.CANCELLED,
                f"cancelled after {exc.rows_done:,} rows; resume with MaterializeVersion",
            )
        except StoreUnavailable as exc:
            final = _ended(
                record,
                OperationState.FAILED,
                code_pb2.UNAVAILABLE,
                f"{exc.message}; the version stays MATERIALIZING at its last checkpoint: "
                "resume with MaterializeVersion",
            )
        except RowcastError as exc:
            final = _ended(record, OperationState.FAILED, code_pb2.FAILED_PRECONDITION, exc.message)
        except Exception as exc:
            final = _ended(record, OperationState.FAILED, code_pb2.INTERNAL, f"{exc}"[:500])
            log.exception("materialisation %s failed", record.name)
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
        try:
            version = await self._registry.versions.get_version(
                record.model, record.version, timeout_s=self._call_s
            )
            ended = await self._operations.finish(
                replace(final, rows_written=version.rows_written or final.rows_written),
                timeout_s=self._call_s,
            )
            if ended.state is not final.state:
                log.warning(
                    "%s had already ended %s: %s",
                    ended.name,
                    ended.state.value,
                    ended.error_message,
                )
        finally:
            self._tasks.pop(record.op_id, None)
            self._cancels.pop(record.op_id, None)
            for gauge in (
                MATERIALIZE_ROWS_WRITTEN,
                MATERIALIZE_ROWS_TOTAL,
                MATERIALIZE_ROWS_PER_SECOND,
            ):
                gauge.remove(*series)
            MATERIALIZATIONS_RUNNING.dec()

    async def running_for(
        self, model: str, version: int, *, timeout_s: float
    ) -> OperationRecord | None:
        """The live materialisation of a version, if one runs (on any replica): the operation
        that last claimed the version, unless it has ended."""
        budget = Budget.of(timeout_s)
        claim = await self._registry.versions.operation_claim(
            model, version, timeout_s=budget.left_s()
        )
        return await self._live(claim, timeout_s=budget.left_s())

    async def _live(self, op_id: str, *, timeout_s: float) -> OperationRecord | None:
        """Operation `op_id` if it still runs (reading it ends a stale one ABORTED)."""
        if not op_id:
            return None
        try:
            record = await self._operations.get(op_id, timeout_s=timeout_s)
        except NotFound:
            return None
        return None if record.done else record

    async def get(self, op_id: str, *, timeout_s: float) -> OperationRecord:
        return await self._operations.get(op_id, timeout_s=timeout_s)

    async def watch(self, op_id: str, *, timeout_s: float) -> AsyncIterator[OperationRecord]:
        """The operation's state each time it changes, ending with the done state; each read
        within `timeout_s`."""
        last: OperationRecord | None = None
        while True:
            record = await self._operations.get(op_id, timeout_s=timeout_s)
            if last is None or (record.rows_written, record.state) != (
                last.rows_written,
                last.state,
            ):
                yield record
                last = record
            if record.done:
                return
            await asyncio.sleep(WATCH_POLL_S)

    async def cancel(self, op_id: str, *, timeout_s: float) -> OperationRecord:
        record = await self._operations.request_cancel(op_id, timeout_s=timeout_s)
        local = self._cancels.get(op_id)
        if local is not None:
            local.set()
        return record

    async def wait(self, op_id: str) -> None:
        task = self._tasks.get(op_id)
        if task is not None:
            await asyncio.shield(task)

    async def stop(self) -> None:
        """On shutdown: ask running operations to stop at a checkpoint."""
        for event in self._cancels.values():
            event.set()
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=10.0)


def _ended(
    record: OperationRecord, state: OperationState, code: int, message: str
) -> OperationRecord:
    """The operation as it ended: its final state, and the status code and message it ended
    with."""
    return replace(record, state=state, error_code=code, error_message=message)
