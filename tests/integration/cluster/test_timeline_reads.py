"""TIMELINE reads of a replicated version table, through the service's own store, while the
region server holding the primary is killed (on the package's cluster: 3 region servers,
replication 2)."""

from __future__ import annotations

import signal

from prometheus_client import REGISTRY

from rowcast.jobs.replicas import check_replicas
from rowcast.store.admin import Family, TableAdmin
from rowcast.store.client import HBaseClient
from rowcast.store.predictions import PredictionStore
from rowcast.store.schema import PRED_FAMILY
from rowcast_dev.hbase.cluster import ClusterHBase


def stale_reads() -> float:
    return (
        REGISTRY.get_sample_value(
            "rowcast_hbase_stale_reads_total", {"operation": "PredictionStore.get"}
        )
        or 0.0
    )


async def test_timeline_reads_answer_through_a_killed_primary_region_server(
    cluster: ClusterHBase,
) -> None:
    """A version table with 2 replicas, read with TIMELINE through the service's store, keeps
    answering every key with the value written after kill -9 of the region server holding the
    primary of its region; some answers are marked stale (they came from the secondary); the
    server is restarted afterwards."""
    hb = cluster.client_settings()
    assert hb.consistency() == "timeline"
    client = HBaseClient(hb)
    store = PredictionStore(client)
    table = "rowcast:replicas_timeline"
    victim: str | None = None
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
        for i, key in enumerate(keys):
            row = await store.get(table, key, timeout_s=2.0)
            assert row is not None and row.output == float(i)
        assert stale_reads() > stale_before
    finally:
        client.close()
        if victim is not None:
            cluster.restart(victim, timeout_s=300)
