"""The checked-in ghz configs (bench/ghz) are current and run clean against the real, secure
PredictionService over server reflection, as a load tester would run them: TLS against the
suite's CA, and a token given on the command line (never in the config).

The full `rowcast bench --quick` run is not tested here: it starts seven server processes and
trains a 1,000-tree model, over a minute even on a warm machine (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from rowcast.config import SecuritySettings
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


def test_checked_in_configs_call_over_tls_without_a_token() -> None:
    """Every config checks the server against the suite's CA and holds no token: no
    `insecure`, no metadata (a token in a committed file would leak and expire)."""
    for name, config in checked_in_configs().items():
        assert config["cacert"] == ".rowcast/tls/ca.pem", name
        assert "insecure" not in config, name
        assert not {"metadata", "metadata-file"} & set(config), name


def _bearer(security: SecuritySettings, token_file: str) -> str:
    token = (security.auth_dir / token_file).read_text().strip()
    return json.dumps({"authorization": f"Bearer {token}"})


async def _ghz(ghz: Path, config: str, report: Path, *flags: str) -> dict[str, int]:
    """One second of `config` with `flags` (they override the config); its status codes."""
    # Async on purpose: the servers under test run on this event loop.
    proc = await asyncio.create_subprocess_exec(
        str(ghz), "--config", str(CONFIGS / config), "--duration", "1s",
        "--concurrency", "2", "--format", "json", "--output", str(report), *flags,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return _status_codes(report, (out + err).decode())


def _status_codes(report: Path, output: str) -> dict[str, int]:
    assert report.is_file(), output
    result = json.loads(report.read_text())
    codes: dict[str, int] = result["statusCodeDistribution"] or {}
    return codes


@pytest.mark.parametrize("config", sorted(checked_in_configs()))
async def test_ghz_config_runs_clean_over_reflection(
    ghz: Path, suite: Suite, tmp_path: Path, config: str
) -> None:
    """One second of each config against the secure server, with the suite's CA and a bearer
    token on the command line: every call answers OK."""
    codes = await _ghz(
        ghz, config, tmp_path / "report.json",
        "--cacert", str(suite.security.ca_file),
        "--metadata", _bearer(suite.security, "admin.token"),
        suite.targets.prediction,
    )  # fmt: skip
    assert set(codes) == {"OK"}, codes
    assert codes["OK"] > 0


async def test_ghz_config_without_a_token_is_unauthenticated(
    ghz: Path, suite: Suite, tmp_path: Path
) -> None:
    """The Predict config over TLS but with no token: every call is Unauthenticated."""
    codes = await _ghz(
        ghz, "predict.json", tmp_path / "report.json",
        "--cacert", str(suite.security.ca_file), suite.targets.prediction,
    )  # fmt: skip
    assert set(codes) == {"Unauthenticated"}, codes
