"""Materialisation on Spark (local[2]) with a bulk load of HFiles into the real standalone
HBase: the same table as the built-in engine, retries, clean failures, cancel, the grid limit.

Each test registers its own model with the demo's signature and model file (9,600 cells), so
the demo model's versions stay as the other integration tests expect them.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import happybase
import pytest

from rowcast.convert import signature_to_pb
from rowcast.core.records import VersionInfo, VersionState
from rowcast.errors import InvalidArgument
from rowcast.jobs.materialize import (
    MaterializeCancelled,
    MaterializeResult,
    Progress,
    materialize,
)
from rowcast.jobs.spark.driver import FAULT_ENV
from rowcast.jobs.spark.engine import SparkJobFailed
from rowcast.jobs.spark.options import SparkOptions
from rowcast.jobs.verify import scan_table
from rowcast.store.predictions import OUTPUT_COL, VERSION_COL
from rowcast.v1 import resources_pb2 as pb
from rowcast_client import AsyncRowcastClient
from tests.integration.conftest import Published
from tests.integration.test_materialize import Stores, stores

__all__ = ["stores"]  # the fixture, shared with test_materialize

#: A Spark run starts a JVM and Python workers: ~30 s on a quiet 2-core machine, minutes
#: when it is shared.
pytestmark = pytest.mark.timeout(900)


#: Two local cores, two attempts per task; small partitions so that the grid spans several.
def spark_options(staging: Path) -> SparkOptions:
    return SparkOptions(master="local[2,2]", partition_rows=2_500, staging=str(staging))


async def on_spark(
    stores: Stores,
    version: VersionInfo,
    staging: Path,
    *,
    max_grid_rows: int | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> MaterializeResult:
    """Materialise `version` with the Spark engine (local[2,2]) into the tests' HBase."""
    return await materialize(
        registry=stores.registry,
        predictions=stores.predictions,
        admin=stores.admin,
        version=version,
        signature=stores.signature,
        metrics={},
        salt_buckets=stores.settings.salt_buckets,
        max_grid_rows=max_grid_rows or stores.settings.max_grid_rows,
        hbase=stores.settings.hbase,
        model_file=stores.model_file,
        progress=progress,
        cancel=cancel,
        timeout_s=30.0,
        spark=spark_options(staging),
    )


def leftovers(staging: Path) -> list[Path]:
    return sorted(staging.iterdir())


async def test_spark_and_builtin_write_the_same_table(stores: Stores, tmp_path: Path) -> None:
    """The same model file materialised by the built-in engine and by Spark gives the same
    row count and whole-table digest (scanned from HBase), both versions become READY, every
    cell carries its version's timestamp, and the staging directory is removed."""
    builtin = await stores.new_version("spark_same")
    spark_version = await stores.new_version("spark_same")
    seen: list[int] = []
    first = await stores.run(builtin)
    second = await on_spark(
        stores, spark_version, tmp_path, progress=lambda done, total: seen.append(done)
    )

    grid = stores.signature.grid_size
    assert first.row_count == second.row_count == grid
    assert second.rows_written == grid
    assert first.digest == second.digest
    assert second.verification is not None and second.verification.ok
    a = await scan_table(stores.settings.hbase, first.table, stores.settings.salt_buckets)
    b = await scan_table(stores.settings.hbase, second.table, stores.settings.salt_buckets)
    assert (a.rows, a.digest) == (b.rows, b.digest) == (grid, first.digest)
    for number in (builtin.version, spark_version.version):
        info = await stores.registry.versions.get_version("spark_same", number, timeout_s=30.0)
        assert info.state is VersionState.READY
    # Where the Spark run's time went, in order, within its write time.
    phases = [
        info.metrics[f"spark_{p}_s"] for p in ("session", "first_scored", "written", "loaded")
    ]
    assert phases[0] > 0 and phases == sorted(phases)
    assert phases[-1] <= info.metrics["spark_write_s"] + 0.1
    assert seen and seen[-1] == grid and seen == sorted(seen)
    hb = stores.settings.hbase
    conn = happybase.Connection(hb.host, hb.thrift_port, timeout=30_000)
    try:
        rows_a = dict(conn.table(first.table).scan(include_timestamp=True, limit=50))
        rows_b = dict(conn.table(second.table).rows(list(rows_a), include_timestamp=True))
    finally:
        conn.close()
    assert len(rows_b) == 50
    for key, cells in rows_a.items():
        assert cells[OUTPUT_COL][0] == rows_b[key][OUTPUT_COL][0]
        assert rows_b[key][OUTPUT_COL][1] == rows_b[key][VERSION_COL][1] == spark_version.version
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("fault", ["flaky:1", "kill:2"])
async def test_a_task_lost_once_is_retried(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """A scoring task that raises, or whose Python worker is killed, in its first attempt is
    retried by Spark: the version is READY with every row, counted once."""
    monkeypatch.setenv(FAULT_ENV, fault)
    version = await stores.new_version("spark_retry")
    result = await on_spark(stores, version, tmp_path)
    assert result.row_count == stores.signature.grid_size
    assert result.verification is not None and result.verification.ok
    assert leftovers(tmp_path) == []


async def test_a_task_that_always_fails_fails_the_version_cleanly(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task failing past Spark's attempts fails the run: the version is FAILED with the
    task's error, its table is dropped and no HFile is left in the staging directory."""
    monkeypatch.setenv(FAULT_ENV, "fail:1")
    version = await stores.new_version("spark_fail")
    with pytest.raises(SparkJobFailed, match="injected fault"):
        await on_spark(stores, version, tmp_path)
    info = await stores.registry.versions.get_version("spark_fail", version.version, timeout_s=30)
    assert info.state is VersionState.FAILED
    assert "injected fault" in info.failure_reason
    table = f"rowcast:pred_spark_fail_v{version.version}"
    assert not stores.admin.exists(table, timeout_s=30.0)
    assert leftovers(tmp_path) == []


async def test_a_staging_directory_that_cannot_be_made_fails_the_version_cleanly(
    stores: Stores, tmp_path: Path
) -> None:
    """Staging under a regular file: the run's directory cannot be made, so the version is
    FAILED naming the error, and the table created for it is dropped."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    version = await stores.new_version("spark_staging")
    with pytest.raises(OSError):
        await on_spark(stores, version, blocker)
    info = await stores.registry.versions.get_version(
        "spark_staging", version.version, timeout_s=30
    )
    assert info.state is VersionState.FAILED
    assert "not-a-directory" in info.failure_reason
    assert not stores.admin.exists(f"rowcast:pred_spark_staging_v{version.version}", timeout_s=30)


async def test_cancel_kills_the_spark_run_and_leaves_nothing(
    stores: Stores, tmp_path: Path
) -> None:
    """A cancel during the Spark run stops it: MaterializeCancelled, the version stays
    MATERIALIZING with no progress and no table, the staging directory is removed, and a
    new run then materialises it in full."""
    version = await stores.new_version("spark_cancel")
    cancel = threading.Event()

    def progress(done: int, total: int) -> None:
        cancel.set()

    with pytest.raises(MaterializeCancelled):
        await on_spark(stores, version, tmp_path, cancel=cancel, progress=progress)
    info = await stores.registry.versions.get_version("spark_cancel", version.version, timeout_s=30)
    assert info.state is VersionState.MATERIALIZING and info.rows_written == 0
    assert not stores.admin.exists(f"rowcast:pred_spark_cancel_v{version.version}", timeout_s=30)
    assert leftovers(tmp_path) == []
    result = await on_spark(stores, info, tmp_path)
    assert result.row_count == stores.signature.grid_size


async def test_a_grid_over_the_limit_is_refused_before_spark_starts(
    stores: Stores, tmp_path: Path
) -> None:
    """A grid larger than max_grid_rows is INVALID_ARGUMENT before anything runs: no staging
    directory, no table, the version still REGISTERED."""
    version = await stores.new_version("spark_limit")
    with pytest.raises(InvalidArgument, match="more than the limit"):
        await on_spark(stores, version, tmp_path, max_grid_rows=stores.signature.grid_size - 1)
    info = await stores.registry.versions.get_version("spark_limit", version.version, timeout_s=30)
    assert info.state is VersionState.REGISTERED
    assert not stores.admin.exists(f"rowcast:pred_spark_limit_v{version.version}", timeout_s=30)
    assert leftovers(tmp_path) == []


async def test_materialize_version_on_spark_over_the_rpc(
    client: AsyncRowcastClient, published: Published
) -> None:
    """MaterializeVersion with engine spark: the WatchOperation stream reports progress up to
    every cell, and the version ends READY with the grid's row count."""
    signature = published.v1.model.signature
    await client.register_model(
        pb.Model(
            name="spark_rpc",
            signature=signature_to_pb(signature),
            output=pb.OutputSpec(kind=pb.OUTPUT_KIND_PROBABILITY, description="test"),
        )
    )
    content = await asyncio.to_thread(Path(published.v1.model_file).read_bytes)
    version = await client.create_version("spark_rpc", creator="", lightgbm_model=content)
    op = await client.materialize_version("spark_rpc", version.version, engine="spark")
    states = [s async for s in client.watch_operation(op.name, timeout=600)]
    done = states[-1]
    assert done.version.state == pb.VERSION_STATE_READY, done.error.message
    grid = signature.grid_size
    assert done.version.row_count == grid
    assert done.progress.rows_written == done.progress.total_rows == grid
    seen = [s.progress.rows_written for s in states]
    assert seen == sorted(seen)
