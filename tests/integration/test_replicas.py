"""Region replicas of version tables, against real HBase.

On the standalone HBase (one region server) a table with REGION_REPLICATION 2 gets its
secondary replicas on the same server, and they never see the primary's rows (no region
replica replication, no store-file refresh): exactly the fault of a replica that does not
serve its rows, so the READY gate must refuse the version. The TIMELINE read through a killed
primary's region server needs several region servers (A1's ClusterHBase); that test runs only
when ROWCAST_TEST_CLUSTER=1 (see its docstring).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from rowcast.config import HBaseSettings, Settings
from rowcast.core.records import OutputKind, VersionState
from rowcast.errors import AlreadyExists, VerificationFailed
from rowcast.jobs import replicas as replicas_module
from rowcast.jobs.materialize import MaterializeOptions, materialize
from rowcast.jobs.replicas import check_replicas, sample_keys
from rowcast.store.admin import Family, TableAdmin
from rowcast.store.client import HBaseClient
from rowcast.store.predictions import PredictionStore
from rowcast.store.registry import Registry
from rowcast.store.schema import PRED_FAMILY
from tests.integration.conftest import Published


@pytest_asyncio.fixture(loop_scope="session")
async def replicated(settings: Settings, published: Published) -> AsyncIterator[Settings]:
    """The suite's settings with version tables created with two region replicas."""
    yield replace(settings, hbase=replace(settings.hbase, region_replication=2))


async def test_a_table_created_with_replicas_has_them(replicated: Settings) -> None:
    """A table created with region_replication 2 carries REGION_REPLICATION 2 in HBase's own
    descriptor, and every region has a replica 1; a table created without keeps 1."""
    admin = TableAdmin(replicated.hbase)
    table = "rowcast:replicas_descriptor"
    admin.drop(table, timeout_s=60.0)
    admin.create(table, [Family(PRED_FAMILY)], [b"\x80"], timeout_s=60.0, region_replication=2)
    plain = "rowcast:replicas_plain"
    admin.create(plain, [Family(PRED_FAMILY)], timeout_s=60.0)
    assert admin.region_replication(table, timeout_s=30.0) == 2
    assert admin.region_replication(plain, timeout_s=30.0) == 1
    client = HBaseClient(replicated.hbase)
    try:
        locations = client.thrift2.call(lambda c: c.getAllRegionLocations(table.encode()))
    finally:
        client.close()
    assert sorted(loc.regionInfo.replicaId for loc in locations) == [0, 0, 1, 1]


async def test_a_version_whose_replicas_do_not_serve_its_rows_is_not_ready(
    replicated: Settings, published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Materialising with two replicas on a server where the secondary never receives the rows:
    the replica gate waits its bound, the operation fails naming the replica, and the version
    is FAILED, not READY."""
    monkeypatch.setattr(replicas_module, "REPLICA_WAIT_S", 3.0)
    client = HBaseClient(replicated.hbase)
    registry = Registry.over(client)
    signature = published.v1.model.signature
    model = "replica_gate"
    try:
        with contextlib.suppress(AlreadyExists):
            await registry.models.register_model(
                model,
                signature,
                OutputKind.PROBABILITY,
                "p",
                "t",
                replicated.salt_buckets,
                timeout_s=30.0,
            )
        version = await registry.versions.new_version(model, "test", timeout_s=30.0)
        with pytest.raises(VerificationFailed) as failed:
            await materialize(
                registry=registry,
                predictions=PredictionStore(client),
                admin=TableAdmin(replicated.hbase),
                version=version,
                signature=signature,
                metrics={},
                salt_buckets=replicated.salt_buckets,
                hbase=replicated.hbase,
                timeout_s=30.0,
                max_grid_rows=replicated.max_grid_rows,
                model_file=Path(published.v1.model_file),
                options=MaterializeOptions(chunk_rows=2_000),
            )
        assert "replica 1 of" in str(failed.value)
        after = await registry.versions.get_version(model, version.version, timeout_s=30.0)
        assert after.state is VersionState.FAILED
        assert "replica 1 of" in after.failure_reason
    finally:
        client.close()


async def test_the_replica_gate_passes_when_only_the_primary_is_compared(
    replicated: Settings, published: Published
) -> None:
    """The gate itself is not what fails: with one replica (nothing to wait for) it reports
    ok at once, having read the sample and every region's first and last row."""
    client = HBaseClient(replicated.hbase)
    store = PredictionStore(client)
    table = "rowcast:replicas_gate_primary"
    admin = TableAdmin(replicated.hbase)
    admin.create(table, [Family(PRED_FAMILY)], [b"\x40", b"\x80", b"\xc0"], timeout_s=60.0)
    signature = published.v1.model.signature
    keys = sample_keys(signature, replicated.salt_buckets)
    try:
        store.write(table, [(k, float(i)) for i, k in enumerate(keys)], 1)
        found = check_replicas(store, table, 1, keys, wait_s=5.0)
        assert found.ok
        assert found.sampled == len(keys)
    finally:
        client.close()


@pytest.mark.skipif(
    os.environ.get("ROWCAST_TEST_CLUSTER") != "1",
    reason="starts a multi-node HBase (2 region servers, ~2 GB): set ROWCAST_TEST_CLUSTER=1",
)
async def test_timeline_reads_answer_through_a_killed_primary_region_server(
    tmp_path: Path,
) -> None:
    """On a cluster of 2 region servers (no HDFS, to fit the machine): a version table with 2
    replicas, read with TIMELINE through the service's store, keeps answering every sampled key
    after kill -9 of the region server holding the primary of its region, and some answers
    are marked stale (they came from the secondary)."""
    from rowcast_dev.hbase.cluster import ClusterHBase, ClusterOptions

    options = ClusterOptions(regionservers=2, gateways=2, hdfs=False, meta_replicas=2)
    cluster = ClusterHBase(HBaseSettings(home=tmp_path / "cluster"), options)
    cluster.start(timeout_s=600.0)
    hb = cluster.client_settings()
    assert hb.consistency() == "timeline"
    client = HBaseClient(hb)
    store = PredictionStore(client)
    table = "rowcast:replicas_timeline"
    try:
        admin = TableAdmin(hb)
        admin.ensure_namespace(timeout_s=120.0)
        admin.create(table, [Family(PRED_FAMILY)], timeout_s=120.0, region_replication=2)
        keys = [bytes([i]) + b"k" for i in range(256)]
        store.write(table, [(k, float(i)) for i, k in enumerate(keys)], 1)
        assert check_replicas(store, table, 2, keys, wait_s=120.0).ok
        primary = client.thrift2.call(lambda c: c.getRegionLocation(table.encode(), keys[0], True))
        victim = cluster.regionserver_at(primary.serverName.port)
        assert victim is not None
        stale_before = stale_reads()
        cluster.kill(victim, signal.SIGKILL)
        for key in keys:
            row = await store.get(table, key, timeout_s=2.0)
            assert row is not None and row.output == float(keys.index(key))
        assert stale_reads() > stale_before
    finally:
        client.close()
        cluster.stop()


def stale_reads() -> float:
    return (
        REGISTRY.get_sample_value(
            "rowcast_hbase_stale_reads_total", {"operation": "PredictionStore.get"}
        )
        or 0.0
    )
