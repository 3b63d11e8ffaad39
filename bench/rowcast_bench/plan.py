"""The options of a benchmark run and the environment each server subprocess gets."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from rowcast.config import Settings


@dataclass(frozen=True)
class BenchOptions:
    """How long and how hard each measurement runs, and where things go."""

    #: Seconds of load per measurement.
    duration_s: float = 10.0
    #: Seconds of discarded load before each server's first measurement (connections, caches).
    warmup_s: float = 2.0
    #: Seconds of discarded audited load before the first rowcast measurement (HBase's and
    #: the AuditService's JVM warm up: JIT, the audit table's first flushes).
    downstream_warmup_s: float = 20.0
    #: ghz workers of the throughput measurements (latency ratios always run at 1).
    concurrency: int = 16
    #: Messages per StreamPredict call.
    stream_messages: int = 100
    #: Distinct inputs of the cache-hit runs (all cached after the warm-up).
    hot_inputs: int = 64
    #: Distinct inputs of the cache-miss runs and the raw row() loop.
    cold_inputs: int = 5000
    model: str = "credit_default"
    #: Publish a new version even if the model has an active one.
    republish: bool = False
    #: Cores' worth of CPU that other processes may use before a measurement counts as
    #: disturbed (it is then repeated, up to `attempts` runs, keeping the quietest).
    max_other_cores: float = 0.25
    attempts: int = 3
    #: Seconds to wait for the machine to go quiet before each attempt.
    quiet_wait_s: float = 20.0
    #: Turns of the metrics on / off pair (rowcast_bench.session: _metrics_cost).
    metrics_turns: int = 3
    #: TLS and token authentication on the measured servers, as `rowcast suite up` runs them
    #: (False: `rowcast bench --insecure`, every server in plain text). The TLS + auth on / off
    #: pair (session: _security_cost) runs either way.
    secure: bool = True
    #: Turns of the TLS + auth on / off pair.
    security_turns: int = 3
    client_cpu: int = 0
    server_cpu: int = 1
    #: Core HBase's JVMs and the AuditServices are moved to for the run (None: not pinned,
    #: floating over every core, the measured server's included).
    downstream_cpu: int | None = None
    tools_dir: Path = Path(".tools/bin")
    out_dir: Path = Path("bench/results")
    quick: bool = False

    def quickened(self) -> BenchOptions:
        """Short runs for a smoke test: the same plan, numbers not worth quoting."""
        return replace(
            self,
            duration_s=min(self.duration_s, 1.0),
            warmup_s=min(self.warmup_s, 0.5),
            downstream_warmup_s=min(self.downstream_warmup_s, 0.5),
            cold_inputs=min(self.cold_inputs, 500),
            stream_messages=min(self.stream_messages, 20),
            attempts=1,
            metrics_turns=1,
            security_turns=1,
            quiet_wait_s=0.0,
            quick=True,
        )


def server_env(
    settings: Settings,
    *,
    audit_port: int | None = None,
    cache_size: int | None = None,
    audit: bool | None = None,
    durability: str | None = None,
    metrics: bool | None = None,
    secure: bool = True,
) -> dict[str, str]:
    """ROWCAST_* variables (docs/config.md) that point a server at this run's HBase and at the
    run's TLS and token files (those of `settings.security`), or make it insecure.

    Metrics endpoints bind free ports (0): a suite running beside the bench keeps the defaults.
    Security is always spelled out, so that a ROWCAST_INSECURE in the caller's environment
    does not decide what a measurement means.
    """
    hb = settings.hbase
    sec = settings.security
    env = {
        "ROWCAST_PREDICTION_METRICS_PORT": "0",
        "ROWCAST_AUDIT_METRICS_PORT": "0",
        "ROWCAST_MODEL_METRICS_PORT": "0",
        "ROWCAST_HOME": str(hb.home),
        "ROWCAST_HOST": "127.0.0.1",
        "ROWCAST_HBASE_HOST": hb.host,
        "ROWCAST_HBASE_THRIFT_PORT": str(hb.thrift_port),
        "ROWCAST_HBASE_THRIFT2_PORT": str(hb.thrift2_port),
        "ROWCAST_HBASE_ZK_PORT": str(hb.zookeeper_port),
        "ROWCAST_HBASE_MASTER_PORT": str(hb.master_port),
        "ROWCAST_HBASE_RS_PORT": str(hb.regionserver_port),
        "ROWCAST_INSECURE": "off" if secure else "on",
        "ROWCAST_TLS_DIR": str(sec.tls_dir),
        "ROWCAST_AUTH_DIR": str(sec.auth_dir),
        # Tokens only: the bench measures what a token-carrying caller costs.
        "ROWCAST_CLIENT_CERTS": "none",
    }
    if audit_port is not None:
        env["ROWCAST_AUDIT_PORT"] = str(audit_port)
    if cache_size is not None:
        env["ROWCAST_CACHE_SIZE"] = str(cache_size)
    if audit is not None:
        env["ROWCAST_AUDIT"] = "on" if audit else "off"
    if durability is not None:
        env["ROWCAST_AUDIT_DURABILITY"] = durability
    if metrics is not None:
        env["ROWCAST_METRICS"] = "on" if metrics else "off"
    return env
