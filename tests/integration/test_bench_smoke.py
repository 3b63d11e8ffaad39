"""The checked-in ghz configs (bench/ghz) are current and run clean against the real
PredictionService over server reflection, as a load tester would run them.

The full `rowcast bench --quick` run is not tested here: it starts seven server processes and
trains a 1,000-tree model, over a minute even on a warm machine (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from rowcast_bench.tools import GhzInstaller
from rowcast_bench.workload import checked_in_configs, render_config
from tests.integration.conftest import Suite

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "bench" / "ghz"


@pytest.fixture(scope="module")
def ghz() -> Path:
    """The pinned ghz, installed into .tools/bin with `go install` if it is not there."""
    return GhzInstaller(ROOT / ".tools" / "bin").ensure()


def test_checked_in_configs_are_current() -> None:
    """bench/ghz holds exactly what `python -m rowcast_bench.workload bench/ghz` writes."""
    expected = checked_in_configs()
    assert sorted(p.name for p in CONFIGS.glob("*.json")) == sorted(expected)
    for name, config in expected.items():
        assert (CONFIGS / name).read_text() == render_config(config), (
            f"bench/ghz/{name} is stale; run `python -m rowcast_bench.workload bench/ghz`"
        )


@pytest.mark.parametrize("config", sorted(checked_in_configs()))
async def test_ghz_config_runs_clean_over_reflection(
    ghz: Path, suite: Suite, tmp_path: Path, config: str
) -> None:
    """One second of each config against the real server: every call answers OK."""
    report = tmp_path / "report.json"
    # Async on purpose: the servers under test run on this event loop.
    proc = await asyncio.create_subprocess_exec(
        str(ghz), "--config", str(CONFIGS / config), "--duration", "1s",
        "--concurrency", "2", "--format", "json", "--output", str(report),
        suite.targets.prediction,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert report.is_file(), (out + err).decode()
    result = json.loads(report.read_text())
    codes = result["statusCodeDistribution"] or {}
    assert set(codes) == {"OK"}, (codes, result.get("errorDistribution"))
    assert codes["OK"] > 0
