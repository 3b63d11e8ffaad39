"""The Spark engine's pure parts: the executors' scoring function writes the built-in
engine's bytes, the per-partition accumulator counts a retried task once, progress, and the
request plumbing."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from rowcast.config import HBaseSettings
from rowcast.core.keys import chunk_digest, encode_double, key_matrix, prediction_key, split_rows
from rowcast.core.signature import NumericFeature, Signature
from rowcast.errors import InvalidArgument
from rowcast.jobs.spark import build, driver
from rowcast.jobs.spark.engine import _Run, hbase_properties, partitions
from rowcast.jobs.spark.options import DEFAULT_MASTER
from rowcast.jobs.workers import grid_bins, score
from rowcast.registry.servicer import spark_options
from rowcast.v1 import model_service_pb2 as model_pb


class _Parts:
    """Stands in for the Spark accumulator: records what a task adds."""

    def __init__(self) -> None:
        self.added: list[dict[int, tuple[int, int]]] = []

    def add(self, value: dict[int, tuple[int, int]]) -> None:
        self.added.append(value)


def _feature(name: str, edges: int) -> NumericFeature:
    """A numeric feature of `edges` even edges over [-2, 2], each bin's midpoint its
    representative."""
    e = np.linspace(-2, 2, edges)
    reps = [-2.5, *((e[:-1] + e[1:]) / 2).tolist(), 2.5]
    return NumericFeature(name, tuple(e.tolist()), tuple(reps))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[lgb.Booster, Signature]:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2_000, 2))
    y = (x[:, 0] - x[:, 1] + rng.normal(size=2_000) > 0).astype(int)
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 7, "verbosity": -1},
        lgb.Dataset(pd.DataFrame(x, columns=["a", "b"]), label=y),
        num_boost_round=10,
    )
    signature = Signature(features=(_feature("a", 10), _feature("b", 6)))
    return booster, signature


def test_executor_scoring_writes_the_builtin_engines_bytes_and_digest(
    model: tuple[lgb.Booster, Signature], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mapInPandas function turns flat indices (in any batching) into the built-in
    workers' row keys (the serving layout) and encode_double output cells, and reports the
    partition's rows and the same digest as chunk_digest of the whole grid."""
    booster, signature = model
    monkeypatch.setattr(driver, "_booster", booster)
    grid = signature.grid_size
    parts = _Parts()
    run = driver.score_partitions(signature, 16, "model.txt", parts)
    batches = [pd.DataFrame({"id": np.arange(lo, min(grid, lo + 13))}) for lo in range(0, grid, 13)]
    out = pd.concat(list(run(iter(batches))), ignore_index=True)

    bins = grid_bins(signature.cardinalities, 0, grid)
    outputs = score(booster, signature, bins)
    assert out["key"].tolist() == [prediction_key(b, 16) for b in bins.tolist()]
    assert out["key"].tolist() == split_rows(key_matrix(bins, 16))
    assert out["output"].tolist() == [encode_double(v) for v in outputs.tolist()]
    assert parts.added == [{0: (grid, chunk_digest(key_matrix(bins, 16), outputs))}]


def test_a_task_run_twice_is_counted_once() -> None:
    """Merging a partition's entry again (a retried or recomputed task) overwrites it."""
    merge = driver._ByPartition()
    total = merge.zero({})
    for update in ({0: (10, 1)}, {1: (5, 2)}, {0: (10, 1)}):
        total = merge.addInPlace(total, dict(update))
    assert total == {0: (10, 1), 1: (5, 2)}


@pytest.mark.parametrize("fault", ["fail:3", "flaky:3", "kill:3"])
def test_faults_are_injected_only_where_asked(monkeypatch: pytest.MonkeyPatch, fault: str) -> None:
    """An injected fault names one partition: the others, and a retry of a flaky one, run."""
    monkeypatch.setenv(driver.FAULT_ENV, fault)
    driver._inject_fault(2, 0)
    if not fault.startswith("fail"):
        driver._inject_fault(3, 1)
    if fault.startswith("kill"):
        return  # would end this process; the integration test kills a real worker
    with pytest.raises(RuntimeError, match="injected fault in scoring partition 3"):
        driver._inject_fault(3, 0)


def test_progress_reaches_the_total_only_when_written() -> None:
    """Progress is half scoring, half HFiles written, never going back, below the total until
    the driver reports the rows written; then the total."""
    run = _Run()
    assert run.progress(100) == 0
    run.scored = 100
    assert run.progress(100) == 50
    run.write_done, run.write_tasks = 1, 1
    assert run.progress(100) == 99
    run.write_done, run.write_tasks = 0, 0  # the stage left the status tracker
    assert run.progress(100) == 99
    run.rows = 100
    assert run.progress(100) == 100


def test_partitions_cover_the_grid() -> None:
    """Scoring partitions: enough of the given size to hold the grid, at least one."""
    assert partitions(9_600, 2_500) == 4
    assert partitions(1, 2_500) == 1
    assert partitions(10_000, 2_500) == 4


def test_hbase_properties_name_the_zookeeper_quorum() -> None:
    """The driver reaches HBase through its ZooKeeper; extra properties override."""
    props = hbase_properties(HBaseSettings(host="h", zookeeper_port=2), {"x": "1"})
    assert props == {
        "hbase.zookeeper.quorum": "h",
        "hbase.zookeeper.property.clientPort": "2",
        "x": "1",
    }


def test_the_engine_field_selects_spark_and_its_master() -> None:
    """MATERIALIZE_ENGINE_SPARK gives Spark options (default master local[2,2]); the
    built-in engine is the default, and a spark_master without Spark is INVALID_ARGUMENT."""
    request = model_pb.MaterializeVersionRequest
    assert spark_options(request(model="m", version=1)) is None
    assert spark_options(request(engine=model_pb.MATERIALIZE_ENGINE_BUILTIN)) is None
    chosen = spark_options(request(engine=model_pb.MATERIALIZE_ENGINE_SPARK))
    assert chosen is not None and chosen.master == DEFAULT_MASTER
    yarn = spark_options(request(engine=model_pb.MATERIALIZE_ENGINE_SPARK, spark_master="yarn"))
    assert yarn is not None and yarn.master == "yarn"
    with pytest.raises(InvalidArgument, match="spark_master"):
        spark_options(request(spark_master="yarn"))


def test_helper_jars_leave_out_what_spark_ships() -> None:
    """A jar's artifact name drops its version and Scala suffix, so an HBase dependency that
    Spark ships in another version is recognised and left to Spark."""
    assert build._artifact(Path("netty-common-4.1.105.Final.jar")) == "netty-common"
    assert build._artifact(Path("spark-core_2.13-4.3.0.jar")) == "spark-core"
    assert build._artifact(Path("hbase-server-2.6.1-hadoop3.jar")) == "hbase-server"


def test_errors_are_described_in_one_line() -> None:
    """A Python error is its type and message (JVM errors are tested on Spark)."""
    assert driver.describe(ValueError("bad")) == "ValueError: bad"
