"""Every domain metric of rowcast, defined once: what a service knows about its own work beyond
the gRPC calls (telemetry/metrics.py has those). docs/observability.md describes each one.

The metrics live in prometheus_client's default REGISTRY. A labelled metric shows nothing until
a series is set, so those are registered here. An unlabelled one would show 0 from the moment
it is registered, in every process that imports this module: a routes generation of 0 from
the AuditService would look like a prediction server that lags. So those are created
unregistered, and the component that owns the fact calls `expose` when it starts.

Keep the hot path cheap: resolve a labelled child (`.labels(...)`) once, where its labels
become known (per version table, per store operation), never once per key or per call.
"""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.registry import Collector

from rowcast.telemetry.metrics import HANDLING_BUCKETS

#: HBase round trips take about a millisecond on a local gateway: the gRPC buckets (fine below
#: that), and one more for the long table changes.
HBASE_BUCKETS = (*HANDLING_BUCKETS, 30.0)
#: An activation reaches idle servers in tens of milliseconds, loaded ones in a few hundred.
PROPAGATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# -- prediction servers: the hot path ------------------------------------------------------------

CACHE_HITS = Counter(
    "rowcast_cache_hits_total",
    "Inputs answered from the prediction server's version cache (count of inputs).",
    ["model"],
)
CACHE_MISSES = Counter(
    "rowcast_cache_misses_total",
    "Inputs not in the version cache, answered from HBase (count of inputs).",
    ["model"],
)

# -- every service: HBase --------------------------------------------------------------------

HBASE_CALL_SECONDS = Histogram(
    "rowcast_hbase_call_seconds",
    "Duration of one HBase call (one attempt through a Thrift gateway), in seconds.",
    ["operation", "gateway"],
    buckets=HBASE_BUCKETS,
)
HBASE_CALL_ERRORS = Counter(
    "rowcast_hbase_call_errors_total",
    "HBase calls that failed, by kind (unavailable, rejected, already_exists, timeout, other) "
    "(count of calls).",
    ["operation", "gateway", "kind"],
)
HBASE_GATEWAY_UP = Gauge(
    "rowcast_hbase_gateway_up",
    "1 while a Thrift gateway answers, 0 while it is marked down and skipped (until the "
    "background probe reaches it again).",
    ["gateway"],
)
HBASE_STALE_READS = Counter(
    "rowcast_hbase_stale_reads_total",
    "Version-table rows answered by a secondary region replica (TIMELINE reads; never wrong: "
    "a version table is immutable once READY) (count of rows).",
    ["operation"],
)

# -- prediction servers: the audit spool -------------------------------------------------------

SPOOL_BYTES = Gauge(
    "rowcast_spool_bytes",
    "Bytes the audit spool holds on disk, delivered records included until their segment is "
    "deleted (bytes; the size limit applies to this).",
    registry=None,
)
SPOOL_RECORDS = Gauge(
    "rowcast_spool_records",
    "Decisions in the audit spool not yet acknowledged by the AuditService (count of decisions).",
    registry=None,
)
SPOOL_OLDEST_UNDELIVERED_SECONDS = Gauge(
    "rowcast_spool_oldest_undelivered_seconds",
    "Age of the oldest decision in the audit spool not yet acknowledged by the AuditService "
    "(seconds; 0 when everything is delivered).",
    registry=None,
)
DECISIONS_DELIVERED = Counter(
    "rowcast_decisions_delivered_total",
    "Decisions the AuditService acknowledged as stored, sent by this prediction server "
    "(count of decisions).",
    registry=None,
)

# -- the AuditService ------------------------------------------------------------------------

DECISIONS_RECORDED = Counter(
    "rowcast_decisions_recorded_total",
    "Decisions the AuditService stored (count of decisions; a re-sent one counts again, and is "
    "not written again).",
    registry=None,
)
DECISIONS_REFUSED = Counter(
    "rowcast_decisions_refused_total",
    "Decisions the AuditService refused (malformed, failing the checks, or conflicting with a "
    "stored decision), by reason (count of decisions).",
    ["reason"],
)

# -- routes: prediction servers and the ModelService --------------------------------------------

SERVED_VERSION = Gauge(
    "rowcast_served_version",
    "The version number each alias of each model routes to on this prediction server "
    "(a version number).",
    ["model", "alias"],
)
ROUTES_GENERATION = Gauge(
    "rowcast_routes_generation",
    "The registry generation this prediction server's routes were last loaded at "
    "(a generation number).",
    registry=None,
)
REGISTRY_GENERATION = Gauge(
    "rowcast_registry_generation",
    "The registry generation after the last route change this ModelService made "
    "(a generation number).",
    registry=None,
)
ACTIVATION_PROPAGATION_SECONDS = Histogram(
    "rowcast_activation_propagation_seconds",
    "Time from the generation bump of a route change to every registered prediction server "
    "serving it (seconds; only changes that reached every server).",
    buckets=PROPAGATION_BUCKETS,
    registry=None,
)
ACTIVATION_LAGGING_SERVERS = Gauge(
    "rowcast_activation_lagging_servers",
    "Prediction servers that did not serve the last route change when its wait ended "
    "(count of servers).",
    registry=None,
)

# -- the ModelService: materialisation and verification ----------------------------------------

MATERIALIZE_ROWS_WRITTEN = Gauge(
    "rowcast_materialize_rows_written",
    "Rows of a running materialisation acknowledged by HBase so far (rows).",
    ["model", "version"],
)
MATERIALIZE_ROWS_TOTAL = Gauge(
    "rowcast_materialize_rows_total",
    "Rows a running materialisation writes in all: the model's grid size (rows).",
    ["model", "version"],
)
MATERIALIZE_ROWS_PER_SECOND = Gauge(
    "rowcast_materialize_rows_per_second",
    "Write rate of a running materialisation over the last few seconds (rows per second).",
    ["model", "version"],
)
MATERIALIZATIONS_RUNNING = Gauge(
    "rowcast_materializations_running",
    "Materialisations this ModelService process is running (count).",
    registry=None,
)
VERIFICATION = Counter(
    "rowcast_verification_total",
    "Verification gate verdicts, by outcome: passed or failed_<reason> (count of verdicts).",
    ["outcome"],
)

_exposed: set[int] = set()
_expose_lock = threading.Lock()


def expose(*metrics: Collector) -> None:
    """Register unlabelled metrics in the default REGISTRY (idempotent, thread-safe): called by
    the component that owns them, so that a process shows only the metrics it has."""
    with _expose_lock:
        for metric in metrics:
            if id(metric) not in _exposed:
                REGISTRY.register(metric)
                _exposed.add(id(metric))
