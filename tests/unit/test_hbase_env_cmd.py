"""`rowcast hbase env` speaks only of an HBase that runs: for a home where none does it
prints no export line (an `eval "$(rowcast hbase env)"` then sets nothing) and exits 3."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from rowcast_dev.cli.hbase_cmd import EXIT_NOT_RUNNING
from rowcast_dev.cli.hbase_cmd import hbase as hbase_cli


def test_env_of_a_home_where_nothing_runs_exits_3_and_exports_nothing(tmp_path: Path) -> None:
    done = CliRunner().invoke(hbase_cli, ["env", "--home", str(tmp_path)])
    assert done.exit_code == EXIT_NOT_RUNNING
    assert "export" not in done.stdout
    assert "HBase is not running" in done.stderr and str(tmp_path) in done.stderr
