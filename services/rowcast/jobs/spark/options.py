"""What one Spark materialisation is given (plain data; no pyspark import)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

#: The master when none is given: two local cores, one attempt more for a failed task.
DEFAULT_MASTER: Final = "local[2,2]"
#: How the Spark driver's processes compete for CPU (local mode: every executor thread and
#: Python worker too): "idle" (Linux SCHED_IDLE: only CPU nothing else wants), "low" (nice
#: 10), "normal" (the ModelService's own priority).
Priority = Literal["idle", "low", "normal"]
PRIORITIES: Final[tuple[Priority, ...]] = ("idle", "low", "normal")
DEFAULT_PRIORITY: Final[Priority] = "idle"
#: Grid cells scored by one task of the first stage (spark.range's partitions).
DEFAULT_PARTITION_ROWS: Final = 500_000


@dataclass(frozen=True)
class SparkOptions:
    """Where and how the Spark driver runs one materialisation."""

    #: The Spark master: local[N], local[N,attempts], spark://host:7077, yarn, k8s://...
    master: str = DEFAULT_MASTER
    #: Grid cells per scoring task.
    partition_rows: int = DEFAULT_PARTITION_ROWS
    #: The driver's JVM heap (spark.driver.memory; in local mode the executors share it).
    driver_memory: str = "1g"
    #: Where HFiles are written before the bulk load: an absolute local path or a URI the
    #: executors can write and the region servers read (on a cluster an hdfs:// URI on HBase's
    #: own file system, so the load is a rename). Each run writes under a fresh
    #: `<table>-<uuid>` directory in it, removed when the run ends (jobs/spark/staging.py).
    #: None: the system's temporary directory (local file system).
    staging: str | None = None
    #: HBase client properties for the driver and executors (hbase.zookeeper.quorum, ...)
    #: on top of the ones derived from HBaseSettings.
    hbase_conf: dict[str, str] = field(default_factory=dict)
    #: More Spark properties (spark.executor.memory, ...).
    conf: dict[str, str] = field(default_factory=dict)
    #: The Python that runs the driver (its pyspark and rowcast are used).
    python: Path | None = None
    #: CPU priority of the driver process (PRIORITIES); its JVM and Python workers inherit
    #: it, so in local mode, on the machine that also serves, Predict and HBase get the CPU
    #: first and the job takes what they leave.
    priority: Priority = DEFAULT_PRIORITY
