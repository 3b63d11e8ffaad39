"""`rowcast chaos serving` judging and reporting, without a cluster: per-window latency from
the calls' intended starts, the goals' verdicts (each able to FAIL), meta parsing, the fault
schedule, and the command's exit code and JSON (the real run is
tests/integration/test_chaos_serving.py)."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from rowcast_dev.chaos.check import CheckResult
from rowcast_dev.chaos.load import CallRecord, LoadDriver
from rowcast_dev.chaos.meta import meta_bounds, parse_meta_rows
from rowcast_dev.chaos.serving import ServingOptions
from rowcast_dev.chaos.serving_faults import (
    ServingFaultKind,
    gateway_target,
    port_of,
    schedule,
)
from rowcast_dev.chaos.serving_report import (
    FaultWindow,
    ServingReport,
    WindowStats,
    calls_between,
    judge_goals,
    percentile,
    timeline,
)
from rowcast_dev.cli import chaos_cmd


def _calls(latencies_ms: list[float], at: float = 100.0, status: str = "OK") -> list[CallRecord]:
    return [
        CallRecord(at + i * 0.01, at + i * 0.01, at + i * 0.01 + ms / 1000.0, status, "t")
        for i, ms in enumerate(latencies_ms)
    ]


def _window(kind: str, p99_calls: list[CallRecord], round_number: int = 0) -> FaultWindow:
    return FaultWindow(
        kind=kind,
        round=round_number,
        target="regionserver-1",
        signal="SIGKILL",
        at_s=40.0,
        outage_s=30.0,
        reassign_s=22.5,
        primaries_on_target=6,
        stats=WindowStats.of(p99_calls, 40.0),
    )


def _report(
    steady_ms: list[float],
    kill_ms: list[float],
    failed: int = 0,
    check: CheckResult | None = None,
) -> ServingReport:
    steady = _calls(steady_ms)
    kill = _calls(kill_ms, at=200.0) + _calls([1000.0] * failed, at=300.0, status="UNAVAILABLE")
    return ServingReport(
        started_at="2026-12-01T22:00:00+00:00",
        settings={},
        total=WindowStats.of(steady + kill, 100.0),
        steady=WindowStats.of(steady, 30.0),
        faults=[
            _window("kill-regionserver", kill),
            _window("stop-regionserver", _calls([5.0] * 10, at=400.0)),
        ],
        check=check or CheckResult(acknowledged=len(steady) + len(kill_ms), found=1),
        drain_seconds=1.5,
    )


def test_percentiles_are_nearest_rank() -> None:
    """p50 of 1..100 is 50, p99 is 99, p100 the largest; an empty window has no percentile."""
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50.0,
        99.0,
        100.0,
    )
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_latency_counts_from_the_intended_start_and_windows_go_by_it() -> None:
    """A call held back 0.5 s by a stall counts 0.5 s more than it spent on the wire, and it
    belongs to the window its intended start falls in, not the one it ran in."""
    late = CallRecord(intended_s=10.0, start_s=10.5, end_s=10.51, status="OK", target="t")
    assert late.latency_s == pytest.approx(0.51)
    calls = [late, CallRecord(11.0, 11.0, 11.01, "OK", "t")]
    assert calls_between(calls, 9.0, 10.4) == [late]
    stats = WindowStats.of(calls, 2.0)
    assert stats.max_ms == pytest.approx(510.0)
    assert stats.calls_per_s == 1.0


def test_good_numbers_pass_every_goal() -> None:
    """No failed call, kill p99 within 3x steady p99, audit clean: every goal PASS."""
    report = _report([2.0] * 100, [5.0] * 100)
    assert [g.passed for g in report.goals] == [True, True, True]
    assert report.passed
    assert all(g["verdict"] == "PASS" for g in report.to_json()["goals"])


def test_a_failed_predict_fails_the_first_goal() -> None:
    """One UNAVAILABLE among thousands of calls: "0 failed Predict calls" is FAIL."""
    report = _report([2.0] * 1000, [2.0] * 1000, failed=1)
    goals = {g.name: g for g in report.goals}
    assert not goals["no_failed_predicts"].passed
    assert "UNAVAILABLE 1" in goals["no_failed_predicts"].measured
    assert not report.passed
    assert report.to_json()["failed_by_status"] == {"UNAVAILABLE": 1}


def test_a_slow_kill_window_fails_the_latency_goal() -> None:
    """Steady p99 2 ms, kill-window p99 7 ms (> 3 x 2 ms): the latency goal is FAIL; at 5.9 ms
    it is PASS."""
    slow = _report([2.0] * 100, [7.0] * 100)
    assert {g.name: g.passed for g in slow.goals}["kill_p99"] is False
    edge = _report([2.0] * 100, [5.9] * 100)
    assert {g.name: g.passed for g in edge.goals}["kill_p99"] is True


def test_no_region_server_kill_means_the_latency_goal_is_not_met() -> None:
    """A run with no region-server kill window cannot claim the latency goal."""
    steady = WindowStats.of(_calls([2.0] * 10), 10.0)
    goals = judge_goals(steady, steady, [], CheckResult(acknowledged=10, found=10))
    assert {g.name: g.passed for g in goals}["kill_p99"] is False


@pytest.mark.parametrize(
    "check",
    [
        CheckResult(acknowledged=10, found=9, lost=1),
        CheckResult(acknowledged=10, found=10, duplicated=1),
        CheckResult(acknowledged=10, found=9, mismatched=1),
        CheckResult(acknowledged=0),
    ],
    ids=["lost", "duplicated", "mismatched", "nothing-acknowledged"],
)
def test_audit_loss_or_duplication_fails_the_audit_goal(check: CheckResult) -> None:
    """Any lost, duplicated or mismatched decision (or none acknowledged at all) is FAIL."""
    report = _report([2.0] * 10, [2.0] * 10, check=check)
    assert {g.name: g.passed for g in report.goals}["audit"] is False
    assert not report.passed


def test_report_json_has_the_issue_figures() -> None:
    """The JSON names calls, failures by status, steady and per-fault p50/p99/max, reassignment
    seconds and audit lost/duplicated; by_kind keeps the worst window of each kind."""
    data = _report([2.0] * 100, [5.0] * 100).to_json()
    assert data["calls"] == 200 and data["failed"] == 0
    assert data["steady"]["p99_ms"] == 2.0
    (kill,) = [f for f in data["faults"] if f["kind"] == "kill-regionserver"]
    assert kill["p99_ms"] == 5.0 and kill["reassign_s"] == 22.5
    assert data["by_kind"]["kill-regionserver"]["reassign_s"] == [22.5]
    assert data["audit"]["lost"] == 0 and data["audit"]["duplicated"] == 0
    assert "FAIL" not in _report([2.0] * 100, [5.0] * 100).summary()


def test_meta_rows_give_every_replica_and_its_server() -> None:
    """info:server is the primary, info:server_0001 replica 1; start codes are 8-byte longs;
    a region without a server is unassigned ("")."""
    code = (1733090000123).to_bytes(8, "big")
    rows = [
        (
            b"rowcast:pred_m_v1,,1.abc.",
            {
                b"info:regioninfo": b"x",
                b"info:server": b"localhost:16201",
                b"info:serverstartcode": code,
                b"info:server_0001": b"localhost:16202",
                b"info:serverstartcode_0001": code,
            },
        ),
        (b"rowcast:pred_m_v1,\x01,1.def.", {b"info:regioninfo": b"x", b"info:state": b"OPEN"}),
    ]
    table = parse_meta_rows("rowcast:pred_m_v1", rows)
    assert table.region_replication == 2
    assert [r.server for r in table.primaries] == ["localhost:16201", ""]
    assert table.primaries[0].start_code == 1733090000123
    assert table.primaries_by_server() == {"localhost:16201": 1, "": 1}
    assert not table.all_primaries_on(["localhost:16201"])
    assert port_of("localhost:16201") == 16201 and port_of("") is None


def test_meta_is_scanned_from_table_comma_comma() -> None:
    """hbase:meta sorts by table name first: the scan runs from `<table>,,` to `<table> ,,`
    (a prefix scan of `<table>,` finds nothing there, as tried on a real cluster)."""
    assert meta_bounds("rowcast:pred_m_v2") == (b"rowcast:pred_m_v2,,", b"rowcast:pred_m_v2 ,,")


def test_every_round_has_each_fault_once_and_gateways_take_turns() -> None:
    """Two rounds: kill, stop, gateway each twice; Thrift2 first (the read path), then Thrift1."""
    assert list(schedule(2)) == [(r, k) for r in range(2) for k in ServingFaultKind]
    assert [gateway_target(r, 2) for r in range(4)] == [
        "thrift2-1",
        "thrift-1",
        "thrift2-2",
        "thrift-2",
    ]


def test_open_loop_keeps_the_schedule_when_calls_are_late() -> None:
    """Open loop at 20 calls/s: slots are 50 ms apart from the first, whenever they are taken,
    so a call taken late keeps its earlier intended start."""

    async def slots() -> list[float]:
        driver = LoadDriver(
            "m",
            ["t"],
            "r",
            concurrency=1,
            seed=1,
            record_file=Path("/dev/null"),
            max_rate=20.0,
            open_loop=True,
        )
        first = await driver._paced()
        await asyncio.sleep(0.2)  # a stall: three slots pass
        return [first, await driver._paced(), await driver._paced()]

    first, second, third = asyncio.run(slots())
    assert second - first == pytest.approx(0.05)
    assert third - first == pytest.approx(0.10)


def test_serving_command_exits_1_and_writes_the_json_when_a_goal_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose goals fail: exit code 1, the summary says FAIL, the JSON is written."""
    failing = _report([2.0] * 100, [9.0] * 100, failed=3)

    async def run_serving(options: ServingOptions, progress: object) -> ServingReport:
        return failing

    monkeypatch.setattr(chaos_cmd, "run_serving", run_serving)
    out = tmp_path / "serving.json"
    result = CliRunner().invoke(chaos_cmd.chaos, ["serving", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "FAIL  0 failed Predict calls" in result.stdout
    saved = json.loads(out.read_text())
    assert saved["passed"] is False
    assert {g["name"]: g["verdict"] for g in saved["goals"]} == {
        "no_failed_predicts": "FAIL",
        "kill_p99": "FAIL",
        "audit": "PASS",
    }


def test_serving_results_go_to_bench_results_by_default(tmp_path: Path) -> None:
    """Without --out: bench/results/chaos-serving-<UTC time>.json when that folder exists."""
    now = datetime(2026, 12, 1, 22, 30, 5, tzinfo=UTC)
    assert chaos_cmd.default_serving_out_path(now, tmp_path) == (
        tmp_path / "chaos-serving-20261201-223005.json"
    )
    (tmp_path / "bench" / "results").mkdir(parents=True)
    assert chaos_cmd.default_serving_out_path(now, tmp_path, scaling=True) == (
        tmp_path / "bench" / "results" / "chaos-scaling-20261201-223005.json"
    )


def test_the_per_second_timeline_counts_calls_and_failures_by_intended_second() -> None:
    """Calls go to the second of their intended start after the epoch, failures counted."""
    calls = [
        CallRecord(100.2, 100.2, 100.21, "OK", "t"),
        CallRecord(100.9, 101.5, 101.6, "DEADLINE_EXCEEDED", "t"),
        CallRecord(102.1, 102.1, 102.12, "OK", "t"),
    ]
    assert timeline(calls, 100.0) == [[0.0, 2, 1, 700.0], [2.0, 1, 0, 20.0]]
