"""What one Spark materialisation is given (plain data; no pyspark import)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

#: The master when none is given: two local cores, one attempt more for a failed task.
DEFAULT_MASTER: Final = "local[2,2]"
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
    #: Where HFiles are written before the bulk load: a directory the region servers can read
    #: (on a cluster an HDFS URI on HBase's own file system, so the load is a rename). None: a
    #: fresh directory under the system's temporary directory (local file system).
    staging: str | None = None
    #: HBase client properties for the driver and executors (hbase.zookeeper.quorum, ...)
    #: on top of the ones derived from HBaseSettings.
    hbase_conf: dict[str, str] = field(default_factory=dict)
    #: More Spark properties (spark.executor.memory, ...).
    conf: dict[str, str] = field(default_factory=dict)
    #: The Python that runs the driver (its pyspark and rowcast are used).
    python: Path | None = None
