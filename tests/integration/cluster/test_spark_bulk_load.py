"""The Spark engine against the package's multi-node HBase (3 region servers, region
replication 2, HBase on HDFS), staging its HFiles on that HDFS as a real cluster would
(`SparkOptions.staging = hdfs://namenode/rowcast/staging`): the version loads, passes the
same gate as the built-in engine (count, digest, re-score, every replica serving it), and the
run's staging directory is gone afterwards, after a success, a failure, a cancel (the driver
killed before it could clean up), and when this process has to remove it itself.

The listings are read by Hadoop's own shell (FsShell) on the cluster's class path,
independently of the helper that wrote and removed the files.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from rowcast.config import Settings
from rowcast.core.records import ModelInfo, VersionInfo, VersionState
from rowcast.jobs.materialize import MaterializeCancelled, MaterializeResult, Progress, materialize
from rowcast.jobs.publish import PublishSpec, publish
from rowcast.jobs.spark.driver import FAULT_ENV
from rowcast.jobs.spark.engine import SparkJobFailed, helper_jars
from rowcast.jobs.spark.options import SparkOptions
from rowcast.jobs.spark.staging import remove_remote
from rowcast.store.admin import DDL_TIMEOUT_S, TableAdmin
from rowcast.store.client import HBaseClient
from rowcast.store.predictions import PredictionStore
from rowcast.store.registry import Registry
from rowcast.store.schema import ensure_schema, prediction_table
from rowcast_dev.chaos.serving_stack import ServingStack, StackSpec
from rowcast_dev.hbase import cluster_templates as tpl
from rowcast_dev.hbase.cluster import ClusterHBase
from rowcast_dev.hbase.jvm import fetch_classpath, java_or_fail
from tests.integration.cluster.conftest import FIGURES

pytestmark = pytest.mark.timeout(1200)

MODEL = "spark_cluster"
STAGING = "/rowcast/staging"


@dataclass
class OnCluster:
    settings: Settings
    client: HBaseClient
    registry: Registry
    model: ModelInfo
    model_file: Path
    #: The built-in engine's digest of the same model file (published into the cluster).
    digest: int
    #: hdfs://host:port of the cluster's NameNode.
    hdfs: str
    java: str
    #: The cluster's own class path (Hadoop and HBase, as its JVMs run).
    classpath: str

    @property
    def staging(self) -> str:
        return f"{self.hdfs}{STAGING}"

    def listing(self, path: str = STAGING) -> list[str] | None:
        """Names under `path` on HDFS, or None if it does not exist: read by Hadoop's own
        shell (FsShell) on the cluster's class path, not by the helper that wrote them."""
        done = subprocess.run(
            [self.java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", self.classpath,
             "org.apache.hadoop.fs.FsShell", "-ls", "-C", f"{self.hdfs}{path}"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            assert "No such file or directory" in done.stderr, done.stderr[-2000:]
            return None
        return sorted(line.rsplit("/", 1)[-1] for line in done.stdout.split())

    def mkdirs(self, path: str) -> None:
        subprocess.run(
            [self.java, "-cp", self.classpath, "org.apache.hadoop.fs.FsShell", "-mkdir", "-p",
             f"{self.hdfs}{path}"],
            capture_output=True, timeout=120, check=True,
        )  # fmt: skip

    async def version(self) -> VersionInfo:
        return await self.registry.versions.new_version(MODEL, "test", timeout_s=30.0)

    async def on_spark(
        self,
        version: VersionInfo,
        *,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> MaterializeResult:
        return await materialize(
            registry=self.registry,
            predictions=PredictionStore(self.client),
            admin=TableAdmin(self.settings.hbase),
            version=version,
            signature=self.model.signature,
            metrics={},
            salt_buckets=self.model.salt_buckets,
            max_grid_rows=self.settings.max_grid_rows,
            hbase=self.settings.hbase,
            model_file=self.model_file,
            progress=progress,
            cancel=cancel,
            timeout_s=60.0,
            spark=SparkOptions(master="local[2,2]", partition_rows=2_500, staging=self.staging),
        )


@pytest.fixture(scope="module")
async def on_cluster(cluster: ClusterHBase) -> AsyncIterator[OnCluster]:
    stack = ServingStack(StackSpec(home=cluster.paths.home)).settings
    settings = replace(stack, hbase=replace(stack.hbase, timeout_s=30.0))
    await asyncio.to_thread(ensure_schema, TableAdmin(settings.hbase), timeout_s=DDL_TIMEOUT_S)
    published = await publish(settings, PublishSpec(model=MODEL, activate=False))
    client = HBaseClient(settings.hbase)
    # The NameNode's configuration directory first: FsShell needs a core-site.xml.
    classpath = (
        f"{cluster.conf_dir(tpl.NAMENODE)}:{fetch_classpath(cluster.paths).read_text().strip()}"
    )
    try:
        yield OnCluster(
            settings,
            client,
            Registry.over(client),
            published.model,
            published.model_file,
            published.materialized.digest,
            f"hdfs://127.0.0.1:{cluster.layout().port(tpl.NAMENODE)}",
            java_or_fail(),
            classpath,
        )
    finally:
        client.close()


async def test_spark_loads_through_hdfs_staging_and_leaves_it_empty(on_cluster: OnCluster) -> None:
    """HFiles staged on HDFS and bulk-loaded into the replicated table: READY with the grid's
    rows and the built-in engine's digest, the replica gate passed, staging left empty."""
    version = await on_cluster.version()
    result = await on_cluster.on_spark(version)
    grid = on_cluster.model.signature.grid_size
    assert result.row_count == result.rows_written == grid
    assert result.digest == on_cluster.digest
    info = await on_cluster.registry.versions.get_version(MODEL, version.version, timeout_s=30)
    assert info.state is VersionState.READY, info.failure_reason
    assert info.metrics.get("replica_sample", 0) > 0  # the replica gate ran, and passed
    assert on_cluster.listing() == []
    FIGURES["spark_hdfs_write_s"] = round(result.write_s, 1)


async def test_a_failed_spark_run_leaves_no_hfiles_on_hdfs(
    on_cluster: OnCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task failing past its attempts: FAILED, the table dropped, staging empty."""
    monkeypatch.setenv(FAULT_ENV, "fail:1")
    version = await on_cluster.version()
    with pytest.raises(SparkJobFailed, match="injected fault"):
        await on_cluster.on_spark(version)
    info = await on_cluster.registry.versions.get_version(MODEL, version.version, timeout_s=30)
    assert info.state is VersionState.FAILED
    admin = TableAdmin(on_cluster.settings.hbase)
    assert not admin.exists(prediction_table(MODEL, version.version), timeout_s=30.0)
    assert on_cluster.listing() == []


async def test_a_cancelled_run_is_cleaned_up_by_the_model_service(
    on_cluster: OnCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel while the run's directory exists on HDFS (one scoring task stalls, so the run
    cannot finish first) kills the driver's process group, which cannot clean up after
    itself then: this process removes the directory."""
    monkeypatch.setenv(FAULT_ENV, "stall:0")
    version = await on_cluster.version()
    prefix = prediction_table(MODEL, version.version).replace(":", "-") + "-"
    cancel = threading.Event()
    seen: list[str] = []

    def watch() -> None:
        deadline = time.monotonic() + 600.0
        while not cancel.is_set() and time.monotonic() < deadline:
            names = [n for n in on_cluster.listing() or [] if n.startswith(prefix)]
            if names:
                seen.extend(names)
                cancel.set()
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with pytest.raises(MaterializeCancelled):
            await on_cluster.on_spark(version, cancel=cancel)
    finally:
        cancel.set()
        watcher.join()
    assert seen, "the run's staging directory never appeared on HDFS"
    assert on_cluster.listing() == []
    info = await on_cluster.registry.versions.get_version(MODEL, version.version, timeout_s=30)
    assert info.state is VersionState.MATERIALIZING and info.rows_written == 0


def test_the_helper_removes_a_staging_directory_on_hdfs(on_cluster: OnCluster) -> None:
    """The fallback on its own: a run directory with a family directory inside, made through
    WebHDFS, is removed by the JVM helper's `remove` (Hadoop's FileSystem)."""
    run = f"{STAGING}/left-{uuid.uuid4().hex}"
    on_cluster.mkdirs(f"{run}/hfiles/p")
    assert on_cluster.listing(f"{run}/hfiles") == ["p"]
    uri = f"{on_cluster.hdfs}{run}"
    assert remove_remote(uri, helper_jars()) is True
    assert on_cluster.listing(run) is None
