"""The Spark application of a materialisation: `python -m rowcast.jobs.spark.driver JOB.json`.

One run, in its own process (the ModelService never holds a JVM): the grid's flat indices are
enumerated inside the executors (`spark.range`), scored per partition with the version's model
file (`mapInPandas`: the same `score`, `key_matrix` and digest as the built-in workers), handed
to the JVM helper (java/, `dev.rowcast.spark.HFiles`) that partitions them by the table's
regions, sorts them within each and writes HFiles with HFileOutputFormat2, then bulk-loaded
with BulkLoadHFiles. Nothing of the grid is collected on the driver: what comes back is one
(rows, digest) pair per scoring partition, through an accumulator keyed by partition, so a
retried or recomputed task overwrites its own entry instead of adding to it.

It reports on stdout, one JSON object a line: `progress` (rows scored, HFile tasks done),
`session` (Spark is up), `written` (rows, digest, regions), `loaded` (files), `cleaned` (the
run's staging directory removed, after a load or a failure) or `error` (message), each with
`t`, its seconds since the driver started; exit status 0 only after the load.
The parent (`engine`) stops it by killing its process group.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from rowcast.core.keys import add_digests, chunk_digest, key_matrix, split_rows
from rowcast.core.signature import Signature

#: A fault the tests inject into the executors: `fail:<partition>` raises in every attempt of
#: that scoring task, `flaky:<partition>` in its first attempt only, `kill:<partition>` kills
#: the Python worker (os._exit) in its first attempt, `stall:<partition>` holds its first
#: attempt for STALL_S (a run that is still going when the test acts).
FAULT_ENV: Final = "ROWCAST_SPARK_FAULT"
REPORT_EVERY_S: Final = 0.5
STALL_S: Final = 300.0
_JOB_GROUP: Final = "rowcast-materialize"


@dataclass(frozen=True)
class JobSpec:
    """What the parent hands the driver (written as JSON beside the pickled signature)."""

    master: str
    table: str
    version: int
    salt_buckets: int
    model_file: str
    signature_file: str
    #: The run's staging directory (a URI), removed when the run ends; HFiles go under
    #: `hfile_dir` inside it.
    staging_dir: str
    hfile_dir: str
    partitions: int
    jars: list[str]
    hbase_conf: dict[str, str]
    spark_conf: dict[str, str]
    family: str
    output_qualifier: str
    version_qualifier: str
    #: The version cell's bytes (hex), as core.keys.encode_long writes them.
    version_value: str
    #: CPU priority of the driver process (options.PRIORITIES; its JVM and Python workers
    #: inherit it).
    priority: str = "normal"

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> JobSpec:
        return cls(**json.loads(path.read_text()))


#: When this process started (near enough: the module is imported first): every event says
#: how long after it came (`t`, seconds), so the parent can tell where a run's time went.
_T0: Final = time.monotonic()


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": round(time.monotonic() - _T0, 3), **fields}), flush=True)


# --- The executors' side -----------------------------------------------------------------

_booster: Any = None


def _inject_fault(partition: int, attempt: int) -> None:
    kind, _, where = os.environ.get(FAULT_ENV, "").partition(":")
    if not kind or int(where) != partition:
        return
    if kind == "fail" or (kind == "flaky" and attempt == 0):
        raise RuntimeError(f"injected fault in scoring partition {partition}")
    if kind == "kill" and attempt == 0:
        os._exit(137)
    if kind == "stall" and attempt == 0:
        time.sleep(STALL_S)


def score_partitions(signature: Signature, buckets: int, model_name: str, parts: Any) -> Any:
    """The mapInPandas function: flat indices in, (key, output) bytes out, the partition's
    (rows, digest) into the accumulator `parts`."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        global _booster
        import lightgbm as lgb
        from pyspark import SparkFiles, TaskContext

        from rowcast.jobs.modelfile import Encoding
        from rowcast.jobs.workers import cell_bins, score

        ctx = TaskContext.get()
        partition = ctx.partitionId() if ctx else 0
        _inject_fault(partition, ctx.attemptNumber() if ctx else 0)
        if _booster is None:  # once per Python worker, reused across its tasks
            _booster = lgb.Booster(model_file=SparkFiles.get(model_name))
        encoding = Encoding.of(_booster, signature)
        rows = digest = 0
        for frame in batches:
            flat = frame["id"].to_numpy(dtype=np.int64)
            bins = cell_bins(signature.cardinalities, flat)
            outputs = score(_booster, signature, bins, encoding)
            keys = key_matrix(bins, buckets)
            digest = add_digests(digest, chunk_digest(keys, outputs))
            # The output cell as core.keys.encode_double writes it (big-endian double), the
            # same bytes chunk_digest hashed.
            values = np.ascontiguousarray(outputs.astype(">f8")).view(np.uint8).reshape(-1, 8)
            rows += len(flat)
            yield pd.DataFrame({"key": split_rows(keys), "output": split_rows(values)})
        parts.add({partition: (rows, digest)})

    return run


# --- The driver's side ---------------------------------------------------------------------


class _ByPartition:
    """Accumulator of {partition: (rows, digest)}: merging overwrites, so a task that runs
    twice (a retry after a lost executor) is counted once."""

    def zero(self, value: dict[int, tuple[int, int]]) -> dict[int, tuple[int, int]]:
        return {}

    def addInPlace(
        self, a: dict[int, tuple[int, int]], b: dict[int, tuple[int, int]]
    ) -> dict[int, tuple[int, int]]:
        a.update(b)
        return a


def _reporter(sc: Any, parts: Any, stop: threading.Event) -> None:
    tracker = sc.statusTracker()
    while not stop.wait(REPORT_EVERY_S):
        scored = sum(rows for rows, _ in dict(parts.value).values())
        done = tasks = 0
        for job_id in tracker.getJobIdsForGroup(_JOB_GROUP):
            job = tracker.getJobInfo(job_id)
            if job is None or not job.stageIds:
                continue
            stage = tracker.getStageInfo(max(job.stageIds))
            if stage is not None:
                done, tasks = stage.numCompletedTasks, stage.numTasks
        emit("progress", scored=scored, write_tasks_done=done, write_tasks=tasks)


def run(spec: JobSpec) -> None:
    from pyspark import AccumulatorParam
    from pyspark.sql import SparkSession

    class ByPartition(_ByPartition, AccumulatorParam[dict[int, tuple[int, int]]]):
        pass

    # The executors' Python is this one (its rowcast, pyspark, LightGBM), on a cluster too
    # unless the environment names another.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    signature: Signature = pickle.loads(Path(spec.signature_file).read_bytes())
    builder = (
        SparkSession.builder.master(spec.master)
        .appName(f"rowcast materialise {spec.table}")
        # On the JVMs' own class path, not spark.jars: HBase's metrics classes live in Hadoop's
        # packages and reach their package-private classes, which needs one class loader.
        # (On a cluster the jars must be at the same paths on every node: docs/materialize.md.)
        .config("spark.driver.extraClassPath", os.pathsep.join(spec.jars))
        .config("spark.executor.extraClassPath", os.pathsep.join(spec.jars))
        .config("spark.ui.enabled", "false")
        .config("spark.pyspark.python", sys.executable)
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "10000")
        # The shuffle of (key, output) byte arrays: the Java API's pair RDD has no class tag,
        # so Spark would fall back to Java serialization.
        .config("spark.serializer", "org.apache.spark.serializer.KryoSerializer")
    )
    for key, value in spec.spark_conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    emit("session")
    sc = spark.sparkContext
    sc.setLogLevel("WARN")
    try:
        sc.setJobGroup(_JOB_GROUP, spec.table)
        model = Path(spec.model_file)
        sc.addFile(str(model))
        parts = sc.accumulator({}, ByPartition())
        total = signature.grid_size
        cells = spark.range(0, total, 1, spec.partitions).mapInPandas(
            score_partitions(signature, spec.salt_buckets, model.name, parts),
            schema="key binary, output binary",
        )
        stop = threading.Event()
        reporter = threading.Thread(target=_reporter, args=(sc, parts, stop), daemon=True)
        reporter.start()
        helper = helper_of(sc)
        try:
            regions = helper.write(
                cells._jdf,
                spec.hbase_conf,
                spec.table,
                spec.hfile_dir,
                spec.family,
                spec.output_qualifier,
                spec.version_qualifier,
                spec.version,
                bytes.fromhex(spec.version_value),
            )
        finally:
            stop.set()
            reporter.join()
        got = dict(parts.value)
        if sorted(got) != list(range(spec.partitions)):
            raise RuntimeError(
                f"{len(got)} of {spec.partitions} scoring partitions reported their rows"
            )
        rows = sum(r for r, _ in got.values())
        digest = 0
        for _, d in got.values():
            digest = add_digests(digest, d)
        emit("written", rows=rows, digest=str(digest), regions=int(regions))
        started = time.monotonic()
        files = helper.bulkLoad(spec.hbase_conf, spec.table, spec.hfile_dir)
        emit("loaded", files=int(files), seconds=time.monotonic() - started)
    finally:
        try:
            _remove_staging(helper_of(sc), spec)
        finally:
            spark.stop()


def helper_of(sc: Any) -> Any:
    jvm: Any = sc._jvm
    return jvm.dev.rowcast.spark.HFiles


def _remove_staging(helper: Any, spec: JobSpec) -> None:
    """Remove the run's staging directory (a loaded run's emptied family directory, a failed
    one's HFiles); `cleaned` tells the parent it need not."""
    try:
        helper.remove(spec.hbase_conf, spec.staging_dir)
    except Exception as exc:  # the parent removes it then (engine: RunDirs.remove_run)
        emit("clean_failed", message=describe(exc)[:500])
        return
    emit("cleaned", dir=spec.staging_dir)


def describe(exc: BaseException) -> str:
    """An error in one line: a JVM error (py4j) by its own message and its root cause, not
    its stack trace."""
    java = getattr(exc, "java_exception", None)
    if java is None:
        return f"{type(exc).__name__}: {exc}"
    root = java
    while root.getCause() is not None:
        root = root.getCause()
    text = str(java.toString())
    # A task's Python error is the root's message with the worker's traceback: keep the
    # error line (the last one that is not Spark's SQLSTATE).
    lines = [line.strip() for line in str(root.toString()).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("SQLSTATE")]
    first = lines[0] if lines else ""
    last = lines[-1] if len(lines) > 1 else ""
    return f"{text}; caused by {first}" + (f" ... {last}" if last else "")


def lower_priority(priority: str) -> None:
    """Set this process's CPU priority before the JVM starts (children inherit it)."""
    if priority == "idle" and hasattr(os, "SCHED_IDLE"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    elif priority in ("idle", "low"):  # no SCHED_IDLE off Linux: the lowest nice is next
        os.nice(19 if priority == "idle" else 10)


def main(argv: list[str]) -> int:
    try:
        spec = JobSpec.load(Path(argv[0]))
        lower_priority(spec.priority)
        run(spec)
    except Exception as exc:  # reported to the parent, which fails the version
        emit("error", message=describe(exc)[:2000])
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
