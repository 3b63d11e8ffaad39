"""`rowcast chaos audit` output: the JSON result is always written (to --out, or by default to
chaos-audit-<UTC time>.json in the current directory) and its headline fields always printed.

The run itself is replaced by a made-up report here (the real run, with its own HBase and
faults, is tests/integration/test_chaos.py); what is tested is the command's reporting.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from rowcast_dev.chaos.check import CheckResult
from rowcast_dev.chaos.faults import FaultEvent, FaultKind
from rowcast_dev.chaos.report import HEADLINE, ChaosReport
from rowcast_dev.chaos.run import ChaosOptions
from rowcast_dev.cli import chaos_cmd


def _report() -> ChaosReport:
    faults = [
        FaultEvent(FaultKind.KILL_AUDIT, "audit", "SIGKILL", 1.0, 2.0),
        FaultEvent(FaultKind.KILL_PREDICTION, "prediction-0", "SIGKILL", 4.0, 3.0),
        FaultEvent(FaultKind.KILL_PREDICTION, "prediction-1", "SIGKILL", 8.0, 3.0),
        FaultEvent(FaultKind.KILL_HBASE, "hbase-master", "SIGKILL", 12.0, 20.0),
        FaultEvent(FaultKind.STOP_HBASE, "hbase-master", "SIGSTOP", 33.0, 4.0),
    ]
    return ChaosReport(
        started_at="2026-11-25T16:51:15+00:00",
        seed=7,
        target_decisions=10,
        target_kills=4,
        durability="process",
        prediction_servers=2,
        concurrency=2,
        check=CheckResult(acknowledged=12, found=12),
        faults=faults,
        drain_seconds=1.234,
    )


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch) -> None:
    async def run_chaos(options: ChaosOptions, progress: object) -> ChaosReport:
        return _report()

    monkeypatch.setattr(chaos_cmd, "run_chaos", run_chaos)


def _headline_line(output: str) -> dict[str, object]:
    (line,) = [ln for ln in output.splitlines() if ln.startswith("{")]
    parsed = json.loads(line)
    assert isinstance(parsed, dict)
    return parsed


@pytest.mark.usefixtures("fake_run")
def test_without_out_the_result_goes_to_a_timestamped_file_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --out: the whole JSON result is written to chaos-audit-<UTC time>.json in the current
    directory, and the summary, the headline JSON and the file's path are printed."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(chaos_cmd.chaos, ["audit"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (written,) = tmp_path.iterdir()
    assert re.fullmatch(r"chaos-audit-\d{8}-\d{6}\.json", written.name)
    saved = json.loads(written.read_text())
    assert saved["kills_by_target"] == {
        "audit": 1,
        "hbase-master": 1,
        "prediction-0": 1,
        "prediction-1": 1,
    }
    headline = _headline_line(result.stdout)
    assert list(headline) == list(HEADLINE)
    assert headline == {k: saved[k] for k in HEADLINE}
    assert headline["drain_seconds"] == 1.23 and headline["kills"] == 4
    assert "PASSED" in result.stdout
    assert f"result written to {written}" in result.stdout


@pytest.mark.usefixtures("fake_run")
def test_json_prints_the_whole_result_and_writes_it_to_out(tmp_path: Path) -> None:
    """--json --out F: stdout is the whole JSON result (headline fields first), and F holds the
    same JSON."""
    out = tmp_path / "sub" / "result.json"
    result = CliRunner().invoke(
        chaos_cmd.chaos, ["audit", "--json", "--out", str(out)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed == json.loads(out.read_text())
    assert list(printed)[: len(HEADLINE)] == list(HEADLINE)
    assert f"result written to {out}" in result.stderr


def test_the_default_file_name_is_the_utc_time() -> None:
    """The default --out names the run's start in UTC, whatever the local time zone."""
    now = datetime(2026, 11, 25, 16, 51, 15, tzinfo=UTC)
    assert chaos_cmd.default_out_path(now) == Path("chaos-audit-20261125-165115.json")
