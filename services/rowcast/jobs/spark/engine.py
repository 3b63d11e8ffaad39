"""This process's side of a Spark materialisation: the table, the driver process, progress,
cancel, clean-up, and the same verification gate as the built-in engine before READY.

The Spark application (`driver`) runs as a child process in its own process group, so the
ModelService holds no JVM and a cancel is a kill of the whole group (Python driver, JVM,
Python workers). Whatever stops a run before it is verified (cancel, the driver failing, a
task failing past Spark's retries, the bulk load failing half-way) drops the version's table,
so no half-loaded table is left that a later check could mistake for a written one, and the
staging directory with the HFiles is removed in every case (`staging`: by the driver, or by
this process when the driver could not).

| what happened | version state |
|---|---|
| `cancel` set | MATERIALIZING, table dropped, progress 0 (a new run starts over) |
| the driver or the load failed | FAILED (reason recorded), table dropped |
| verification failed | FAILED (reason recorded) |
| HBase unavailable for a state change | as the built-in engine: stays MATERIALIZING |
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import lightgbm as lgb

from rowcast.aio import within
from rowcast.config import HBaseSettings
from rowcast.core.keys import encode_long
from rowcast.core.records import VersionInfo, VersionState
from rowcast.core.signature import Signature
from rowcast.errors import FailedPrecondition, StoreUnavailable, VerificationFailed
from rowcast.jobs import replicas
from rowcast.jobs.materialize import (
    MaterializeCancelled,
    MaterializeOptions,
    MaterializeResult,
    Progress,
    sample_seed,
)
from rowcast.jobs.replicas import replicas_problem
from rowcast.jobs.spark.driver import JobSpec
from rowcast.jobs.spark.options import SparkOptions
from rowcast.jobs.spark.staging import RunDirs, staging_root
from rowcast.jobs.verify import HeldOut, verify
from rowcast.store.admin import DDL_TIMEOUT_S, TableAdmin
from rowcast.store.predictions import OUTPUT_COL, VERSION_COL, PredictionStore
from rowcast.store.registry import Registry
from rowcast.store.schema import PRED_FAMILY, create_prediction_table

#: How long the driver's process group gets to end after SIGTERM before SIGKILL.
KILL_GRACE_S: Final = 5.0
#: Lines of the driver's stderr kept in a failure reason.
STDERR_TAIL: Final = 20


class SparkJobFailed(Exception):
    """The Spark application ended without loading the table (the reason is its own)."""


@dataclass
class _Run:
    """What the driver reported so far."""

    scored: int = 0
    write_done: int = 0
    write_tasks: int = 0
    rows: int | None = None
    digest: int | None = None
    loading: bool = False
    loaded: bool = False
    #: The driver removed the run's staging directory.
    cleaned: bool = False
    error: str | None = None
    reported: int = 0
    #: The grid's cells (for telling when scoring is done).
    total: int = 0
    #: Seconds after the driver's start at which each phase ended (`timings`).
    phases: dict[str, float] = field(default_factory=dict)

    def timings(self) -> dict[str, float]:
        """Where the run's time went, as version metrics: seconds from the driver's start to
        Spark up (JVM, SparkContext), to the first scoring task done (Python workers up), to
        every cell scored, to the HFiles written, to the table loaded."""
        return {f"spark_{name}_s": round(t, 1) for name, t in self.phases.items()}

    def progress(self, total: int) -> int:
        """Rows through the pipeline: half for scoring, half for HFiles written; never
        lower than reported before (a finished stage drops out of Spark's status tracker)."""
        if self.rows is not None:
            return total
        written = total * self.write_done // self.write_tasks if self.write_tasks else 0
        now = min(total - 1, (min(self.scored, total) + written) // 2) if total else 0
        self.reported = max(self.reported, now)
        return self.reported


def helper_jars() -> list[str]:
    """The JVM helper and the HBase jars, or FailedPrecondition when they were not built."""
    try:
        from rowcast.jobs.spark import build
    except ImportError as exc:  # pyspark not installed
        raise FailedPrecondition(
            f"the Spark engine needs pyspark ({exc}); install rowcast-dev[dev] (scripts/setup)"
        ) from exc
    jars = build.built()
    if jars is None:
        raise FailedPrecondition(
            "the Spark engine's JVM helper is not built: run scripts/setup "
            "(or python -m rowcast.jobs.spark.build)"
        )
    return [str(p) for p in jars.all]


def hbase_properties(hbase: HBaseSettings, extra: dict[str, str]) -> dict[str, str]:
    """HBase client properties for the driver and executors: the ZooKeeper quorum."""
    return {
        "hbase.zookeeper.quorum": hbase.host,
        "hbase.zookeeper.property.clientPort": str(hbase.zookeeper_port),
        **extra,
    }


def partitions(grid_size: int, partition_rows: int) -> int:
    return max(1, -(-grid_size // partition_rows))


async def materialize_spark(
    *,
    registry: Registry,
    predictions: PredictionStore,
    admin: TableAdmin,
    hbase: HBaseSettings,
    version: VersionInfo,
    signature: Signature,
    salt_buckets: int,
    metrics: dict[str, float],
    model_file: Path,
    options: MaterializeOptions,
    spark: SparkOptions,
    progress: Progress | None,
    cancel: threading.Event | None,
    heldout: HeldOut | None,
    timeout_s: float,
) -> MaterializeResult:
    """Write the version's table on Spark, verify it, and mark it READY (or FAILED).

    The caller (`rowcast.jobs.materialize.materialize`) has checked the grid's size and the
    version's state. A run always starts over (HFiles are written whole); `cancel` kills the
    Spark application (MaterializeCancelled).
    """
    jars = helper_jars()
    try:
        staging_root(spark.staging)
    except ValueError as exc:  # the server's ROWCAST_SPARK_STAGING (or SparkOptions.staging)
        raise FailedPrecondition(str(exc)) from exc
    model, number = version.model, version.version
    booster = await asyncio.to_thread(lgb.Booster, model_file=str(model_file))
    await registry.versions.update_version(
        model, number, state=VersionState.MATERIALIZING, timeout_s=timeout_s
    )
    table = await asyncio.to_thread(
        create_prediction_table,
        admin,
        model,
        number,
        salt_buckets,
        signature,
        timeout_s=max(timeout_s, DDL_TIMEOUT_S),
    )
    await registry.versions.update_progress(model, number, 0, 0, timeout_s=timeout_s)
    total = signature.grid_size
    started = time.monotonic()
    run = _Run(total=total)
    dirs: RunDirs | None = None
    try:
        try:
            dirs = await asyncio.to_thread(RunDirs.create, spark.staging, table)
            await _drive(
                run,
                _spec(dirs, table, number, salt_buckets, signature, model_file, jars, hbase, spark),
                dirs.job,
                spark,
                total,
                progress,
                cancel,
            )
        except BaseException as exc:
            # Nothing of a stopped run stays: the load may have been half done.
            with contextlib.suppress(StoreUnavailable):
                await asyncio.to_thread(admin.drop, table, timeout_s=DDL_TIMEOUT_S)
            if isinstance(exc, MaterializeCancelled):
                with contextlib.suppress(StoreUnavailable):
                    await registry.versions.update_progress(
                        model, number, 0, 0, timeout_s=timeout_s
                    )
            elif not isinstance(exc, (asyncio.CancelledError, StoreUnavailable)):
                await _fail(registry, version, f"{type(exc).__name__}: {exc}"[:1000], timeout_s)
            raise
    finally:
        # The HFiles of a failed run, or the emptied directories of a loaded one.
        if dirs is not None:
            await asyncio.to_thread(dirs.remove_run, jars, driver_cleaned=run.cleaned)
            dirs.close()
    write_s = time.monotonic() - started
    assert run.rows is not None and run.digest is not None
    await registry.versions.update_progress(model, number, total, run.digest, timeout_s=timeout_s)
    if progress is not None:
        progress(total, total)
    verify_started = time.monotonic()
    seed = sample_seed(options)
    verdict = await verify(
        # From the primaries, as the built-in engine: secondaries may not have every row yet.
        predictions=predictions.strong(),
        hbase=hbase,
        table=table,
        version=number,
        signature=signature,
        salt_buckets=salt_buckets,
        booster=booster,
        sample_size=options.sample_size,
        seed=seed,
        heldout=heldout,
        digest=run.digest,
    )
    verify_s = time.monotonic() - verify_started
    if not verdict.ok:
        reason = f"{verdict.reason} (verification sample seed {seed})"
        await _fail(
            registry, version, reason, timeout_s, verdict.row_count, {**metrics, **verdict.metrics}
        )
        raise VerificationFailed(f"version {number} of {model!r} failed verification: {reason}")
    if hbase.region_replication > 1:
        # The built-in engine's replica gate: every secondary serves the loaded rows.
        problem, found = await replicas_problem(
            predictions,
            table,
            signature,
            salt_buckets,
            hbase.region_replication,
            wait_s=replicas.REPLICA_WAIT_S,
        )
        metrics = {**metrics, **found}
        if problem is not None:
            await _fail(
                registry,
                version,
                problem,
                timeout_s,
                verdict.row_count,
                {**metrics, **verdict.metrics},
            )
            raise VerificationFailed(f"version {number} of {model!r}: {problem}")
    await registry.versions.update_version(
        model,
        number,
        state=VersionState.READY,
        row_count=verdict.row_count,
        metrics={**metrics, **verdict.metrics, "spark_write_s": write_s, **run.timings()},
        failure_reason="",
        timeout_s=timeout_s,
    )
    return MaterializeResult(
        table, run.rows, verdict.row_count, run.digest, verdict, write_s, 0.0, verify_s
    )


def _spec(
    dirs: RunDirs,
    table: str,
    number: int,
    salt_buckets: int,
    signature: Signature,
    model_file: Path,
    jars: list[str],
    hbase: HBaseSettings,
    spark: SparkOptions,
) -> Path:
    signature_file = dirs.job / "signature.pickle"
    signature_file.write_bytes(pickle.dumps(signature))
    family, _, output_q = OUTPUT_COL.decode().partition(":")
    _, _, version_q = VERSION_COL.decode().partition(":")
    if family != PRED_FAMILY or not output_q < version_q:
        raise AssertionError("an HFile needs a row's qualifiers in byte order")
    spec = JobSpec(
        master=spark.master,
        table=table,
        version=number,
        salt_buckets=salt_buckets,
        model_file=str(model_file),
        signature_file=str(signature_file),
        staging_dir=dirs.run,
        hfile_dir=dirs.hfiles,
        partitions=partitions(signature.grid_size, spark.partition_rows),
        jars=jars,
        hbase_conf=hbase_properties(hbase, spark.hbase_conf),
        spark_conf={"spark.driver.memory": spark.driver_memory, **spark.conf},
        family=family,
        output_qualifier=output_q,
        version_qualifier=version_q,
        version_value=encode_long(number).hex(),
        priority=spark.priority,
    )
    path = dirs.job / "job.json"
    spec.dump(path)
    return path


async def _drive(
    run: _Run,
    spec: Path,
    job_dir: Path,
    spark: SparkOptions,
    total: int,
    progress: Progress | None,
    cancel: threading.Event | None,
) -> None:
    """Run the driver to its end, relaying progress into `run`; kill it on cancel or task
    cancellation."""
    python = str(spark.python or sys.executable)
    stderr = (job_dir / "driver.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        python,
        "-m",
        "rowcast.jobs.spark.driver",
        str(spec),
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    try:
        while True:
            if cancel is not None and cancel.is_set():
                await _kill(proc)
                raise MaterializeCancelled(0)
            try:
                line = await within(proc.stdout.readline(), 0.5)
            except TimeoutError:
                continue
            if not line:
                break
            _read(run, line)
            if progress is not None:
                progress(run.progress(total), total)
            if run.loaded and run.cleaned:
                # Done: the table is loaded and the staging gone. Stopping Spark in order
                # (spark.stop) would hold up the verification for a second or so: the group
                # gets SIGTERM instead (the JVM's shutdown hooks remove its temporary files).
                await _kill(proc)
                break
        code = 0 if run.loaded and run.cleaned else await proc.wait()
    except BaseException:
        await _kill(proc)
        raise
    finally:
        stderr.close()
    if code != 0 or not run.loaded:
        tail = (job_dir / "driver.log").read_text(errors="replace").splitlines()[-STDERR_TAIL:]
        reason = run.error or f"the Spark driver exited with status {code}: " + " | ".join(tail)
        raise SparkJobFailed(reason)
    if run.rows != total:
        raise SparkJobFailed(f"Spark scored {run.rows} cells, the grid has {total}")


def _read(run: _Run, line: bytes) -> None:
    try:
        event: dict[str, Any] = json.loads(line)
    except ValueError:
        return  # something else printed on stdout (a library): not ours
    kind = event.get("event")
    at = event.get("t")
    if isinstance(at, (int, float)):
        if kind in ("session", "written", "loaded"):
            run.phases.setdefault(str(kind), float(at))
        elif kind == "progress" and int(event["scored"]) > 0:
            run.phases.setdefault("first_scored", float(at))
            if run.total and int(event["scored"]) >= run.total:
                run.phases.setdefault("scored", float(at))
    if kind == "progress":
        run.scored = int(event["scored"])
        run.write_done, run.write_tasks = int(event["write_tasks_done"]), int(event["write_tasks"])
    elif kind == "written":
        run.rows, run.digest, run.loading = int(event["rows"]), int(event["digest"]), True
    elif kind == "loaded":
        run.loaded = True
    elif kind == "cleaned":
        run.cleaned = True
    elif kind == "error":
        run.error = str(event["message"])


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        await within(proc.wait(), KILL_GRACE_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


async def _fail(
    registry: Registry,
    version: VersionInfo,
    reason: str,
    timeout_s: float,
    row_count: int | None = None,
    metrics: dict[str, float] | None = None,
) -> None:
    with contextlib.suppress(StoreUnavailable):
        await registry.versions.update_version(
            version.model,
            version.version,
            state=VersionState.FAILED,
            row_count=row_count,
            metrics=metrics,
            failure_reason=reason,
            timeout_s=timeout_s,
        )
