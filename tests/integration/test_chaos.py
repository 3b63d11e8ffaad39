"""`rowcast chaos audit`, short: kill -9 and SIGSTOP the serving stack under Predict load and
find every acknowledged decision on record exactly once, with TLS and token authentication
on (the services' audit stream included); plus the verdict's own rules.

Slow (2.5-3 min on 2 cores): the run starts an HBase of its own (the session HBase of the other
tests is never touched), publishes the demo model into it, kills its master JVM once (a ~30 s
restart) and restarts killed services (a Python start-up each).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rowcast.core.keys import cell_timestamp, decision_time_ms, new_decision_id
from rowcast_dev.chaos.check import IndexEntries, judge
from rowcast_dev.chaos.load import Received

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MODEL = "credit_default"


def test_short_chaos_run_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """2,000+ decisions through kill -9 of the AuditService, both prediction servers and the
    HBase master, and SIGSTOP of HBase, every service secure: lost 0, duplicated 0, every
    field as received, and no call refused for its credentials; the headline fields are
    printed as JSON and the whole result is written to --out."""
    out = tmp_path / "chaos.json"
    argv = [sys.executable, "-m", "rowcast_cli.main", "chaos", "audit", "--decisions", "2000"]
    argv += ["--kills", "4", "--seed", "7", "--rate", "150", "--pause", "0.5", "1.5"]
    argv += ["--time-limit", "300", "--drain-timeout", "180", "--home", str(tmp_path / "home")]
    argv += ["--out", str(out)]
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        output, _ = proc.communicate(timeout=540)
    except subprocess.TimeoutExpired:
        # SIGTERM lets the run stop its servers and its HBase; only then give up on it.
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        raise
    text = output.decode(errors="replace")
    assert out.exists(), text[-3000:]
    result = json.loads(out.read_text())
    assert proc.returncode == 0, text[-3000:]
    assert result["lost"] == 0 and result["duplicated"] == 0 and result["mismatched"] == 0
    assert result["acknowledged"] >= 2000
    assert result["found"] == result["acknowledged"]
    assert result["kills"] >= 4
    kinds = {f["kind"] for f in result["faults"]}
    assert kinds == {"kill-audit", "kill-prediction", "kill-hbase", "stop-hbase"}
    # Seed 7's schedule: round 1 kills the master, the AuditService and prediction-0; round 2
    # stops HBase, then kills prediction-1, the fourth kill. A slower run only adds kills.
    by_target = result["kills_by_target"]
    assert {"audit", "prediction-0", "prediction-1", "hbase-master"} <= set(by_target), by_target
    assert sum(by_target.values()) == result["kills"]
    killed = [f["target"] for f in result["faults"] if f["signal"] == "SIGKILL"]
    assert by_target == {t: killed.count(t) for t in set(killed)}
    assert result["drain_seconds"] is not None
    assert result["settings"]["security"] == "tls+token"
    failed = result["requests"]["failed"]
    assert not {"UNAUTHENTICATED", "PERMISSION_DENIED"} & set(failed), failed
    home = tmp_path / "home"
    assert (home / "tls" / "ca.pem").is_file() and (home / "auth" / "chaos-load.token").is_file()
    headline = ("acknowledged", "found", "lost", "duplicated", "kills", "drain_seconds")
    printed = [json.loads(ln) for ln in text.splitlines() if ln.startswith('{"acknowledged"')]
    assert printed == [{k: result[k] for k in headline}], text[-3000:]
    assert f"result written to {out}" in text
    print(printed[0])


def _received(subject: str, decision_id: str | None = None) -> Received:
    return Received(
        decision_id=decision_id or new_decision_id(),
        subject=subject,
        balance=1200.5,
        income=30000.0,
        student="No",
        model_version=1,
        output=0.125,
        key="0a00010002",
        source="hbase",
        server="127.0.0.1:1",
    )


def _row(r: Received, **changed: bytes) -> dict[bytes, tuple[bytes, int]]:
    time_ms = decision_time_ms(r.decision_id)
    ts = cell_timestamp(time_ms)
    cells = {
        b"d:id": r.decision_id.encode(),
        b"d:model": MODEL.encode(),
        b"d:version": b"1",
        b"d:subject": r.subject.encode(),
        b"d:features": json.dumps(r.features, sort_keys=True).encode(),
        b"d:key": r.key.encode(),
        b"d:output": repr(r.output).encode(),
        b"d:source": r.source.encode(),
        b"d:time": str(time_ms).encode(),
    }
    cells.update({f"d:{k}".encode(): v for k, v in changed.items()})
    return {col: (value, ts) for col, value in cells.items()}


def _indexed(received: list[Received]) -> IndexEntries:
    return IndexEntries(
        by_subject={r.subject: [r.decision_id] for r in received},
        by_version={r.decision_id: [r.model_version] for r in received},
        by_key={r.decision_id: [r.key] for r in received},
    )


def test_verdict_counts_lost_duplicated_and_mismatched_decisions() -> None:
    """A missing row is lost; a request on record twice, an id indexed under two versions or
    returned to two requests is duplicated; a differing field or missing index row is
    mismatched."""
    ok, gone, twice, two_versions, wrong, reused = (_received(f"run-{i}") for i in range(6))
    again = _received("run-6", reused.decision_id)
    received = [ok, gone, twice, two_versions, wrong, reused, again]
    rows = {r.decision_id: _row(r) for r in received if r is not gone}
    rows[wrong.decision_id] = _row(wrong, output=b"0.5")
    index = _indexed(received)
    index.by_subject[twice.subject] = [twice.decision_id, new_decision_id()]
    index.by_version[two_versions.decision_id] = [1, 2]
    del index.by_key[wrong.decision_id]

    result = judge(MODEL, received, rows, index)

    assert (result.lost, result.duplicated, result.mismatched) == (1, 3, 2)
    assert result.duplicates == {
        "id_received_twice": 1,
        "request_on_record_twice": 1,
        "version_index_twice": 1,
    }
    # The row of the id returned twice can match only one of the two requests.
    assert result.mismatches == {"key_index": 1, "output": 1, "subject": 1}
    assert result.found == len(received) - 1 - 3  # gone; wrong, reused and again
    assert result.unacknowledged_on_record == 1
    assert result.examples["lost"] == [gone.decision_id]


def test_a_clean_record_passes() -> None:
    """Every acknowledged decision on record once, as received: found == acknowledged."""
    received = [_received(f"run-{i}") for i in range(50)]
    rows = {r.decision_id: _row(r) for r in received}
    result = judge(MODEL, received, rows, _indexed(received))
    assert (result.found, result.lost, result.duplicated, result.mismatched) == (50, 0, 0, 0)
