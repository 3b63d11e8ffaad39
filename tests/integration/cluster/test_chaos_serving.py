"""`rowcast chaos serving`, short: one round of each fault (kill -9 of the region server holding
the most primaries of the version table, SIGSTOP of one, kill -9 of a Thrift2 gateway) under
small uncached Predict load on a multi-node HBase of its own (3 region servers, 2+2 gateways,
HDFS, replication 2), every service secure.

Slow (10 min on a busy 2-core machine, 2026-12-01): the run starts its cluster (13 JVMs),
publishes the demo model into it with region replicas, and waits for the master to reassign a
killed server's regions before it restarts the server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rowcast_dev.hbase.cluster import ClusterHBase

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


# The cluster's start (13 JVMs), the publish and the faults take 6-10 min on a busy 2-core
# machine: more than the suite's default 600 s per test.
@pytest.mark.timeout(1500)
def test_serving_goes_on_through_region_server_and_gateway_faults(
    tmp_path: Path, cluster: ClusterHBase
) -> None:
    """Through kill -9 of the primaries' region server, SIGSTOP of one for 20 s and kill -9 of
    a Thrift2 gateway: the primaries reassigned (seconds measured from hbase:meta), every
    decision answered on record once (audit 0 lost, 0 duplicated), the goal verdicts true to
    the numbers, the JSON naming every figure the goals are judged by, the cluster restored;
    and 0 failed Predict calls — the goal not yet reliably met, so a run with failures ends as
    an expected failure naming them (see the end). The latency goal is reported, not
    asserted: on a shared 2-core machine it measures the machine as much as rowcast."""
    out = tmp_path / "serving.json"
    argv = [sys.executable, "-m", "rowcast_cli.main", "chaos", "serving", "--rounds", "1"]
    argv += ["--rate", "25", "--concurrency", "8", "--steady", "15", "--settle", "3"]
    argv += ["--duration", "600", "--drain-timeout", "180", "--seed", "5"]
    argv += ["--home", str(cluster.paths.home), "--out", str(out)]
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        output, _ = proc.communicate(timeout=1320)
    except BaseException:
        # Also on pytest's own timeout or Ctrl-C: SIGTERM lets the run stop its services and
        # its cluster; only then give up on it.
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        raise
    text = output.decode(errors="replace")
    assert out.exists(), text[-4000:]
    result = json.loads(out.read_text())
    verdicts = {g["name"]: g["verdict"] for g in result["goals"]}
    # Exit 1 only for a failed goal; the latency goal alone may fail here (see above).
    assert proc.returncode == (0 if all(v == "PASS" for v in verdicts.values()) else 1), text
    assert result["incomplete"] == "", text[-4000:]
    assert result["calls"] > 300
    assert verdicts["no_failed_predicts"] == ("PASS" if result["failed"] == 0 else "FAIL")
    assert verdicts["audit"] == "PASS"
    assert result["audit"]["lost"] == 0 and result["audit"]["duplicated"] == 0
    assert result["audit"]["acknowledged"] == result["calls"] - result["failed"]
    assert result["settings"]["cache"] == "off" and result["settings"]["security"] == "tls+token"
    assert result["layout"]["region_replication"] == 2
    faults = {f["kind"]: f for f in result["faults"]}
    assert set(faults) == {"kill-regionserver", "stop-regionserver", "kill-gateway"}
    kill = faults["kill-regionserver"]
    assert kill["target"].startswith("regionserver-") and kill["primaries_on_target"] > 0
    assert kill["reassign_s"] is not None and kill["reassign_s"] > 0
    assert faults["kill-gateway"]["target"] == "thrift2-1"
    for fault in result["faults"]:
        assert fault["calls"] > 0 and fault["p99_ms"] is not None, fault
    assert result["steady"]["p99_ms"] is not None
    assert "region-server kill" in text and f"result written to {out}" in text
    # The goal of issue #12, still open: 0 failed calls through every fault. Measured on
    # 2026-12-01: 0 through the region-server kill in one run, 216 of 1,344 in the next (the
    # gateways kept calling the dead primary for ~10 s); docs/scaling.md. Reported as an
    # expected failure with its figures until it holds, never as a pass.
    print(json.dumps({"steady": result["steady"], "by_kind": result["by_kind"]}))
    gap = {f["kind"]: f["failed"] for f in result["faults"] if f["failed"]}
    if result["failed"]:
        _restored(cluster)
        pytest.xfail(f"0-failed goal not met: {result['failed']} of {result['calls']} ({gap})")
    _restored(cluster)


def _restored(cluster: ClusterHBase) -> None:
    # The run left the cluster it did not start running, every process restored (a restarted
    # region server may take a while to check in).
    assert set(cluster.pids()) == set(cluster.components())
    deadline = time.monotonic() + 180
    while not (status := cluster.status()).ready:
        assert time.monotonic() < deadline, status
        time.sleep(2)
