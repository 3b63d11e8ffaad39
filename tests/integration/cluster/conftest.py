"""One multi-node HBase for every test of this package: ZooKeeper, HDFS (NameNode + 2
DataNodes), a master, 3 region servers and 2 + 2 Thrift gateways, region replication 2 — the
layout `rowcast chaos serving` runs on.

A cold start is 1-2 min on 2 idle cores (several on a loaded machine), so the package shares
one (`scope="package"`: it stops after the package's last test, before the other integration
tests go on). Tests that kill or stop a process restart it before they end, so the next test
finds every process serving. The teardown is itself a check: `stop` must leave no process of
the home behind (found by a /proc scan for its marker, independently of the runtime's code);
a survivor fails the run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from rowcast.config import HBaseSettings
from rowcast_dev.hbase.cluster import ClusterHBase, ClusterOptions
from rowcast_dev.hbase.ports import on_free_ports
from tests.integration.processes import marked_processes

#: Figures measured by the tests, printed when the cluster stops (pytest -s shows them).
FIGURES: dict[str, float] = {}


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterHBase]:
    home = tmp_path_factory.mktemp("hbase-cluster")
    runtime = ClusterHBase(
        on_free_ports(HBaseSettings(home=home)),
        ClusterOptions(regionservers=3, gateways=2, datanodes=2, region_replication=2),
    )
    began = time.monotonic()
    try:
        runtime.start(timeout_s=600)
        FIGURES["cold_start_s"] = round(time.monotonic() - began, 1)
        yield runtime
    finally:
        began = time.monotonic()
        runtime.stop(grace_s=30)
        FIGURES["stop_s"] = round(time.monotonic() - began, 1)
        print(f"\ncluster figures: {json.dumps(FIGURES)}")
        left = marked_processes(home)
        assert left == [], f"processes of the cluster survived stop: {left}"
        assert runtime.stop() is False
        assert runtime.status().state == "not_running"
