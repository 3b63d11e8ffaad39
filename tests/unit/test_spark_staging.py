"""Where a Spark run stages its HFiles: the staging root a setting names, one fresh directory
per run, and its removal (local here; HDFS in tests/integration/cluster)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rowcast.config import Settings
from rowcast.jobs.spark.staging import RunDirs, local_path, staging_root


def test_staging_roots_are_uris() -> None:
    assert staging_root("/var/tmp/x/") == "file:///var/tmp/x"
    assert staging_root("file:///var/tmp/x") == "file:///var/tmp/x"
    assert staging_root("hdfs://nn:8020/rowcast/staging/") == "hdfs://nn:8020/rowcast/staging"
    assert staging_root(None).startswith("file:///")


@pytest.mark.parametrize("bad", ["relative/dir", "hdfs://nn:8020"])
def test_a_staging_root_without_an_absolute_path_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="staging"):
        staging_root(bad)


def test_each_run_gets_its_own_directory_named_after_the_table(tmp_path: Path) -> None:
    a = RunDirs.create(str(tmp_path), "rowcast:pred_m_v1")
    b = RunDirs.create(str(tmp_path), "rowcast:pred_m_v1")
    try:
        assert a.run != b.run
        where = local_path(a.run)
        assert where is not None and where.parent == tmp_path and where.is_dir()
        assert where.name.startswith("rowcast-pred_m_v1-")  # no ':' in a Hadoop path
        assert a.hfiles == f"{a.run}/hfiles"
        (where / "hfiles" / "p").mkdir(parents=True)
        (where / "hfiles" / "p" / "f").write_bytes(b"x")
        assert a.remove_run([], driver_cleaned=True) is True  # local: removed whatever it says
        assert not where.exists()
        assert a.job.is_dir() and a.job != b.job
    finally:
        for d in (a, b):
            d.remove_run([], driver_cleaned=False)
            d.close()
    assert not a.job.exists() and sorted(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["relative", "hdfs://nn:8020", "://x/y"])
def test_a_malformed_staging_setting_stops_the_process(value: str) -> None:
    with pytest.raises(ValueError, match="ROWCAST_SPARK_STAGING"):
        Settings.from_env({"ROWCAST_SPARK_STAGING": value})


def test_the_staging_setting_reaches_the_settings() -> None:
    assert Settings.from_env({}).spark_staging is None
    uri = "hdfs://nn:8020/rowcast/staging"
    assert Settings.from_env({"ROWCAST_SPARK_STAGING": uri}).spark_staging == uri


@pytest.mark.parametrize(
    ("priority", "policy", "nice"),
    [("idle", "SCHED_IDLE", 0), ("low", "SCHED_OTHER", 10), ("normal", "SCHED_OTHER", 0)],
)
def test_the_driver_lowers_its_priority_for_itself_and_its_children(
    priority: str, policy: str, nice: int
) -> None:
    """The Spark driver's priority (SparkOptions.priority) holds for the processes it starts
    (the JVM, and through it the Python workers): checked on a child of a driver-like process."""
    code = (
        "import os, subprocess, sys\n"
        "from rowcast.jobs.spark.driver import lower_priority\n"
        f"lower_priority({priority!r})\n"
        "child = subprocess.Popen(['sleep', '5'])\n"
        "print(os.sched_getscheduler(child.pid), os.getpriority(os.PRIO_PROCESS, child.pid))\n"
        "child.kill()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    got_policy, got_nice = (int(v) for v in out.stdout.split())
    assert got_policy == getattr(os, policy)
    assert got_nice == os.getpriority(os.PRIO_PROCESS, 0) + nice
