"""Where one Spark run's files live, and how they go away.

Two places: a local job directory (the job spec, the pickled signature, the driver's log),
always on the ModelService's machine, and the HFile directory, on the file system named by
`SparkOptions.staging`: a local path or `file://` URI (one machine), or an `hdfs://` URI on
HBase's own file system (a cluster: every executor writes there and the region servers move
the files in by a rename). Each run gets a fresh directory `<staging>/<table>-<uuid>` with
its HFiles under `hfiles/`; it is removed when the run ends, whatever happened: by the driver
through Hadoop's FileSystem (its `cleaned` event), and if the driver could not (killed, or
its JVM never started) by this process, directly for a local one and through the JVM helper
(`dev.rowcast.spark.HFiles remove URI`) for any other file system.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlparse

from rowcast.config import check_staging

log = logging.getLogger(__name__)

#: Seconds the JVM helper gets to remove a remote staging directory.
REMOVE_TIMEOUT_S: Final = 120.0


def staging_root(staging: str | None) -> str:
    """The staging root as a URI: None is the system's temporary directory, a plain path an
    absolute local one; a URI is kept. ValueError (config.check_staging) for a relative path
    or a URI without a path."""
    if staging is None:
        return Path(tempfile.gettempdir()).resolve().as_uri()
    check_staging(staging, "the Spark staging directory")
    parsed = urlparse(staging)
    if not parsed.scheme:
        return Path(staging).resolve().as_uri()
    if parsed.scheme == "file":
        return Path(parsed.path).resolve().as_uri()
    return staging.rstrip("/")


def local_path(uri: str) -> Path | None:
    """The local path of a file:// URI (None: another file system)."""
    parsed = urlparse(uri)
    return Path(parsed.path) if parsed.scheme == "file" else None


@dataclass(frozen=True)
class RunDirs:
    """One run's directories."""

    #: Job spec, signature and driver log (local, removed by `close`).
    job: Path
    #: The run's staging directory (a URI), removed when the run ends.
    run: str

    @property
    def hfiles(self) -> str:
        """Where HFileOutputFormat2 writes (must not exist yet)."""
        return f"{self.run}/hfiles"

    @classmethod
    def create(cls, staging: str | None, table: str) -> RunDirs:
        root = staging_root(staging)
        # A table's namespace separator (rowcast:pred_m_v1) is no character for a path.
        name = re.sub(r"[^A-Za-z0-9_.-]", "-", table)
        job = Path(tempfile.mkdtemp(prefix=f"rowcast-spark-{name}-"))
        run = f"{root}/{name}-{uuid.uuid4().hex}"
        where = local_path(run)
        if where is not None:
            where.mkdir(parents=True)
        return cls(job, run)

    def remove_run(self, jars: list[str], *, driver_cleaned: bool) -> bool:
        """Remove the run's staging directory unless the driver reported it gone; True when
        it is gone (a failure is logged with the path, for an operator to remove)."""
        where = local_path(self.run)
        if where is not None:
            shutil.rmtree(where, ignore_errors=True)
            return not where.exists()
        if driver_cleaned:
            return True
        return remove_remote(self.run, jars)

    def close(self) -> None:
        shutil.rmtree(self.job, ignore_errors=True)


def java() -> str:
    """The java binary Spark itself would use (JAVA_HOME, else PATH)."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise RuntimeError("no java on PATH (and no JAVA_HOME)")
    return found


def remove_remote(uri: str, jars: list[str]) -> bool:
    """Remove `uri` through Hadoop's FileSystem in a JVM of its own (helper + HBase + Spark's
    jars, the same Hadoop client the executors wrote with)."""
    from rowcast.jobs.spark.build import spark_jars_dir

    classpath = os.pathsep.join([*jars, str(spark_jars_dir() / "*")])
    try:
        done = subprocess.run(
            [java(), "-cp", classpath, "dev.rowcast.spark.HFiles", "remove", uri],
            capture_output=True,
            text=True,
            timeout=REMOVE_TIMEOUT_S,
            check=False,
        )
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        log.warning("could not remove the Spark staging directory %s: %s", uri, exc)
        return False
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        log.warning("could not remove the Spark staging directory %s: %s", uri, tail)
        return False
    return True
