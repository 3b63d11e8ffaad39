"""TIMELINE reads of a replicated version table, through the service's own store, while the
region server holding primaries of its regions is killed (on the package's cluster: 3 region
servers, replication 2). The server killed is the one holding hbase:meta's primary too: the
case in which HBase's own TIMELINE get first looks the dead primary up in hbase:meta
(measured: 4.8-5 s a get for ~20 s) and rowcast's retry, naming the secondary, answers."""

from __future__ import annotations

import signal
import time

from prometheus_client import REGISTRY

from rowcast.jobs.replicas import check_replicas
from rowcast.store.admin import Family, TableAdmin
from rowcast.store.client import HBaseClient
from rowcast.store.predictions import PredictionStore
from rowcast.store.schema import PRED_FAMILY
from rowcast_dev.hbase.cluster import ClusterHBase
from tests.integration.cluster.conftest import FIGURES

#: Split points of the test table: 7 regions, so that the balancer's round-robin puts some
#: primaries on every region server, the one holding hbase:meta's primary among them.
SPLITS = [bytes([i]) for i in range(32, 256, 32)]


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
    answering every key, each within 2 s, with the value written, after kill -9 of the region
    server holding hbase:meta's primary and primaries of the table; some answers are marked
    stale (they came from a secondary); the server is restarted afterwards."""
    hb = cluster.client_settings()
    assert hb.consistency() == "timeline"
    client = HBaseClient(hb)
    store = PredictionStore(client)
    table = "rowcast:replicas_timeline"
    victim: str | None = None
    try:
        admin = TableAdmin(hb)
        admin.ensure_namespace(timeout_s=120.0)
        admin.create(table, [Family(PRED_FAMILY)], SPLITS, timeout_s=120.0, region_replication=2)
        keys = [bytes([i]) + b"k" for i in range(256)]
        store.write(table, [(k, float(i)) for i, k in enumerate(keys)], 1)
        assert check_replicas(store, table, 2, keys, wait_s=120.0).ok

        def primary_port(table_name: bytes, row: bytes) -> int:
            located = client.thrift2.call(lambda c: c.getRegionLocation(table_name, row, True))
            return int(located.serverName.port)

        meta_port = primary_port(b"hbase:meta", b"")
        region_starts = [b"", *SPLITS]
        with_meta = [s for s in region_starts if primary_port(table.encode(), s) == meta_port]
        assert with_meta, "no primary of the table shares hbase:meta's region server"
        victim = cluster.regionserver_at(meta_port)
        assert victim is not None
        stale_before = stale_reads()
        cluster.kill(victim, signal.SIGKILL)
        slowest = 0.0
        for i, key in enumerate(keys):
            began = time.monotonic()
            row = await store.get(table, key, timeout_s=2.0)
            slowest = max(slowest, time.monotonic() - began)
            assert row is not None and row.output == float(i)
        FIGURES["timeline_get_slowest_after_kill_s"] = round(slowest, 3)
        assert stale_reads() > stale_before
    finally:
        client.close()
        if victim is not None:
            cluster.restart(victim, timeout_s=300)
