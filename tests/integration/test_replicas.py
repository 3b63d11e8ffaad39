"""Region replicas of version tables, against real HBase.

On the standalone HBase (one region server) a table with REGION_REPLICATION 2 gets its
secondary replicas on the same server, and they never see the primary's rows (no region
replica replication, no store-file refresh): exactly the fault of a replica that does not
serve its rows, so the READY gate must refuse the version. The TIMELINE read through a killed
primary's region server needs several region servers: tests/integration/cluster/
test_timeline_reads.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import pytest_asyncio

from rowcast.config import Settings
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
