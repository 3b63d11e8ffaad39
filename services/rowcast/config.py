"""Settings: small frozen objects built once at start-up and passed down.

The environment is read here and nowhere else (`Settings.from_env`). Every field has a default
that works on one machine with the embedded standalone HBase; pointing rowcast at a real cluster
is a matter of `ROWCAST_HBASE_HOST` / `ROWCAST_HBASE_THRIFT_PORT` / `ROWCAST_HBASE_THRIFT2_PORT`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class HBaseSettings:
    """Where the HBase Thrift gateways are, and how the embedded standalone HBase is laid out."""

    host: str = "127.0.0.1"
    #: Thrift1 gateway (what happybase speaks): data reads and writes.
    thrift_port: int = 19090
    #: Thrift2 gateway: table administration (Thrift1 cannot create pre-split tables).
    thrift2_port: int = 19091
    #: ZooKeeper client port of the standalone HBase (2181 is often taken).
    zookeeper_port: int = 21818
    master_port: int = 16000
    regionserver_port: int = 16020
    #: Socket timeout for one Thrift call, in seconds (a call never waits longer than this).
    timeout_s: float = 10.0
    #: Connections kept per process in the happybase pool.
    pool_size: int = 8
    #: Where standalone HBase keeps its data, logs, pid files and configuration.
    home: Path = field(default_factory=lambda: Path(".rowcast").resolve())
    #: Heap of the master JVM (master + regionserver + ZooKeeper). Every pre-split version
    #: table adds 16 regions, each with its own memstore: 1g ran out of memory (and the
    #: regionserver aborted) with ~30 version tables during the test suite.
    master_heap: str = "2g"
    thrift_heap: str = "512m"
    #: "host:port" of every Thrift1 gateway; empty means the one at `host`:`thrift_port`.
    #: Read the effective list with `thrift_addresses()`.
    thrift_gateways: tuple[str, ...] = ()
    #: "host:port" of every Thrift2 gateway; empty means the one at `host`:`thrift2_port`.
    #: Read the effective list with `thrift2_addresses()`.
    thrift2_gateways: tuple[str, ...] = ()
    #: Region replicas of every version table (1: primaries only). Registry, aliases,
    #: operations, audit and dataset tables always keep 1.
    region_replication: int = 1
    #: How version tables are read: "timeline" may answer from a secondary replica (a version
    #: table is immutable once READY, so it cannot be stale); "strong" only from the primary.
    #: None means timeline when `region_replication` > 1, else strong.
    read_consistency: Literal["timeline", "strong"] | None = None
    #: Longest one attempt of a point read on one gateway may take before the call moves to
    #: the next gateway, in seconds; well inside a Predict's deadline. Writes and jobs keep
    #: `timeout_s` per attempt.
    gateway_attempt_timeout_s: float = 0.25
    #: How often a gateway marked down is tried again, in seconds.
    gateway_retry_s: float = 1.0

    def thrift_addresses(self) -> tuple[str, ...]:
        """The Thrift1 gateways ("host:port") data calls are spread over."""
        return self.thrift_gateways or (f"{self.host}:{self.thrift_port}",)

    def thrift2_addresses(self) -> tuple[str, ...]:
        """The Thrift2 gateways ("host:port") admin calls and timeline reads are spread over."""
        return self.thrift2_gateways or (f"{self.host}:{self.thrift2_port}",)

    def consistency(self) -> Literal["timeline", "strong"]:
        """The effective read consistency of version tables."""
        if self.read_consistency is not None:
            return self.read_consistency
        return "timeline" if self.region_replication > 1 else "strong"


@dataclass(frozen=True)
class ServerSettings:
    """Ports and limits of the three gRPC services."""

    host: str = "127.0.0.1"
    prediction_port: int = 50051
    audit_port: int = 50052
    model_port: int = 50053
    #: Seconds in-flight calls get to finish on stop.
    grace_s: float = 5.0
    #: How often prediction servers check the registry for activations, in seconds.
    registry_refresh_s: float = 0.25
    #: Watch the registry generation in HBase's ZooKeeper (store/notify.py) so that a route
    #: change arrives at once; the poll every `registry_refresh_s` stays as the safety net.
    registry_watch: bool = True
    #: How long an activation, rollback or alias change waits for every registered prediction
    #: server to acknowledge it before it returns (reporting who lagged), in seconds.
    propagation_timeout_s: float = 2.0
    #: "process": each decision is written to the spool file before Predict answers (survives
    #: any process crash); "fsync": also fsync'd, in group commits (survives a machine crash).
    audit_durability: Literal["process", "fsync"] = "process"
    #: Spool size at which Predict answers RESOURCE_EXHAUSTED rather than drop records.
    audit_spool_max_bytes: int = 1 << 30
    #: Largest number of decisions sent to the AuditService in one call.
    audit_batch_size: int = 500
    #: Record every decision (off only for benchmarks that measure its cost).
    audit_enabled: bool = True
    #: Cached answers per active model version (0 disables the cache).
    cache_size: int = 100_000
    #: Answer for a key missing from a version table; None means NOT_FOUND instead.
    missing_row_default: float | None = None
    #: Calls in flight per server process beyond which new calls get RESOURCE_EXHAUSTED.
    max_in_flight: int = 2_000
    #: Let several server processes share the port (SO_REUSEPORT).
    reuse_port: bool = False


ServiceName = Literal["prediction", "audit", "model"]


@dataclass(frozen=True)
class MetricsAddress:
    """Where one server's Prometheus endpoint listens (port 0: a free one)."""

    host: str
    port: int


#: Metrics ports of the processes of `serve --processes N` are this far apart.
REPLICA_PORT_STRIDE = 10


@dataclass(frozen=True)
class MetricsSettings:
    """Each service's Prometheus /metrics endpoint (docs/observability.md); off: no endpoint and
    no metrics interceptor at all."""

    enabled: bool = True
    #: Loopback by default: the endpoint has no authentication.
    host: str = "127.0.0.1"
    prediction_port: int = 9464
    audit_port: int = 9465
    model_port: int = 9466

    def address(self, service: ServiceName) -> MetricsAddress | None:
        """Where `service`'s endpoint listens; None when metrics are off."""
        if not self.enabled:
            return None
        port = {
            "prediction": self.prediction_port,
            "audit": self.audit_port,
            "model": self.model_port,
        }[service]
        return MetricsAddress(self.host, port)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MetricsSettings:
        """Process i of `rowcast serve --processes N` (ROWCAST_REPLICA_INDEX=i, set by it) binds
        each configured port + REPLICA_PORT_STRIDE * i, so that the processes sharing one gRPC
        port (SO_REUSEPORT) are scraped one by one without taking another service's default
        port (9464, 9474, ... for the PredictionService); a port of 0 stays 0."""
        replica = int(env.get("ROWCAST_REPLICA_INDEX", "0"))
        if replica < 0:
            raise ValueError(f"ROWCAST_REPLICA_INDEX must be 0 or more, got {replica}")

        def port(name: str, default: int) -> int:
            base = int(env.get(name, default))
            return base + REPLICA_PORT_STRIDE * replica if base else 0

        return cls(
            enabled=_flag(env.get("ROWCAST_METRICS", "on"), "ROWCAST_METRICS"),
            host=env.get("ROWCAST_METRICS_HOST", cls.host),
            prediction_port=port("ROWCAST_PREDICTION_METRICS_PORT", cls.prediction_port),
            audit_port=port("ROWCAST_AUDIT_METRICS_PORT", cls.audit_port),
            model_port=port("ROWCAST_MODEL_METRICS_PORT", cls.model_port),
        )


# Traces and logs (docs/observability.md). The OpenTelemetry SDK and its OTLP exporter also
# read their own finer OTEL_* variables (timeouts, headers, certificates); these decide whether
# spans are made at all, where they go and how they are sampled.
TraceExporter = Literal["console", "otlp"]
TRACE_EXPORTERS: tuple[TraceExporter, ...] = ("console", "otlp")
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
LogFormat = Literal["json", "text"]


@dataclass(frozen=True)
class TracingSettings:
    """Whether spans are made, where they are exported and which calls are sampled."""

    #: OTEL_TRACES_EXPORTER (comma-separated): otlp, console (stdout) or none. Unlike the
    #: OpenTelemetry default (otlp), unset means none: no span is made and no interceptor runs.
    exporters: tuple[TraceExporter, ...] = ()
    #: OTEL_SERVICE_NAME; None names each service rowcast-prediction, -audit or -model.
    service_name: str | None = None
    #: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT (gRPC, e.g.
    #: http://127.0.0.1:4317); None leaves the exporter's default, localhost:4317.
    otlp_endpoint: str | None = None
    #: OTEL_TRACES_SAMPLER, one of SAMPLERS (the OpenTelemetry names).
    sampler: str = "parentbased_always_on"
    #: OTEL_TRACES_SAMPLER_ARG: the ratio of the traceidratio samplers, in [0, 1].
    sampler_ratio: float = 1.0

    @property
    def enabled(self) -> bool:
        return bool(self.exporters)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TracingSettings:
        if _flag(env.get("OTEL_SDK_DISABLED", "false"), "OTEL_SDK_DISABLED"):
            return cls()
        names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "none").split(",")]
        exporters: list[TraceExporter] = []
        for name in names:
            if name in ("", "none"):
                continue
            if name not in TRACE_EXPORTERS:
                raise ValueError(
                    f"OTEL_TRACES_EXPORTER must be otlp, console or none, got {name!r}"
                )
            exporters.append("otlp" if name == "otlp" else "console")
        protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"
        )
        if "otlp" in exporters and protocol != "grpc":
            raise ValueError(f"rowcast exports OTLP over grpc only, got protocol {protocol!r}")
        sampler = env.get("OTEL_TRACES_SAMPLER", cls.sampler).strip().lower()
        if sampler not in SAMPLERS:
            raise ValueError(f"OTEL_TRACES_SAMPLER must be one of {SAMPLERS}, got {sampler!r}")
        ratio = float(env.get("OTEL_TRACES_SAMPLER_ARG") or cls.sampler_ratio)
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"OTEL_TRACES_SAMPLER_ARG must be in [0, 1], got {ratio}")
        return cls(
            exporters=tuple(dict.fromkeys(exporters)),
            service_name=env.get("OTEL_SERVICE_NAME") or None,
            otlp_endpoint=(
                env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or None
            ),
            sampler=sampler,
            sampler_ratio=ratio,
        )


@dataclass(frozen=True)
class LogSettings:
    """How a server process writes its log."""

    #: ROWCAST_LOG_FORMAT: json (one object per line) or text; None means the command's own
    #: default (json for `rowcast serve`, text for everything else).
    format: LogFormat | None = None
    #: ROWCAST_LOG_LEVEL: DEBUG shows the hot-path records, INFO (the default) does not.
    level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LogSettings:
        raw = env.get("ROWCAST_LOG_FORMAT", "").strip().lower()
        if raw not in ("", "json", "text"):
            raise ValueError(f"ROWCAST_LOG_FORMAT must be json or text, got {raw!r}")
        level = env.get("ROWCAST_LOG_LEVEL", cls.level).strip().upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(
                f"ROWCAST_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}"
            )
        fmt: LogFormat | None = "json" if raw == "json" else "text" if raw == "text" else None
        return cls(format=fmt, level=level)


ClientCertMode = Literal["none", "require"]
CLIENT_CERT_MODES: tuple[ClientCertMode, ...] = ("none", "require")


@dataclass(frozen=True)
class SecuritySettings:
    """TLS and authentication of the three services (docs/security.md). On by default; the
    files live under ROWCAST_HOME (`rowcast certs init`, `rowcast auth init` make them).
    `insecure()` turns both off, for local experiments only."""

    #: Serve TLS, and call the AuditService over TLS (prediction servers' audit stream).
    tls: bool = True
    #: Authenticate every call (bearer token or client certificate) and enforce the roles.
    auth: bool = True
    #: ROWCAST_HOME/tls: ca.pem (the CA), server.pem + server-key.pem (this server).
    tls_dir: Path = field(default_factory=lambda: Path(".rowcast/tls").resolve())
    #: ROWCAST_HOME/auth: token-signing.pub (verifies tokens; the private key beside it only
    #: on the machine that issues them), audit-chain.key, and the service's own tokens.
    auth_dir: Path = field(default_factory=lambda: Path(".rowcast/auth").resolve())
    #: mTLS: "none" (tokens only) or "require" (every connection presents a client
    #: certificate signed by the CA; a call is then identified by its token when it sends one,
    #: else by its certificate). grpc's Python server cannot ask for a certificate without
    #: requiring one, so there is no "optional".
    client_certs: ClientCertMode = "none"
    #: How often servers re-read the revoked tokens from HBase, in seconds.
    revocation_refresh_s: float = 2.0

    @property
    def ca_file(self) -> Path:
        return self.tls_dir / "ca.pem"

    @property
    def cert_file(self) -> Path:
        return self.tls_dir / "server.pem"

    @property
    def key_file(self) -> Path:
        return self.tls_dir / "server-key.pem"

    @property
    def token_public_key_file(self) -> Path:
        return self.auth_dir / "token-signing.pub"

    @property
    def token_private_key_file(self) -> Path:
        return self.auth_dir / "token-signing.key"

    @property
    def chain_key_file(self) -> Path:
        """HMAC key of the audit chain: prediction servers tag records with it, `rowcast audit
        verify` checks them with it."""
        return self.auth_dir / "audit-chain.key"

    @property
    def recorder_token_file(self) -> Path:
        """The token a prediction server sends on its audit stream (role recorder)."""
        return self.auth_dir / "recorder.token"

    @classmethod
    def under(cls, home: Path) -> SecuritySettings:
        return cls(tls_dir=home / "tls", auth_dir=home / "auth")

    def insecure(self) -> SecuritySettings:
        return replace(self, tls=False, auth=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str], home: Path) -> SecuritySettings:
        base = cls.under(home)
        mode = env.get("ROWCAST_CLIENT_CERTS", "none").strip().lower()
        if mode not in CLIENT_CERT_MODES:
            raise ValueError(
                f"ROWCAST_CLIENT_CERTS must be none or require, got {mode!r} (grpc's Python "
                "server can require a client certificate or not ask for one; it cannot ask "
                "without requiring)"
            )
        insecure = _flag(env.get("ROWCAST_INSECURE", "off"), "ROWCAST_INSECURE")
        secured = replace(
            base,
            tls_dir=Path(env.get("ROWCAST_TLS_DIR", str(base.tls_dir))).resolve(),
            auth_dir=Path(env.get("ROWCAST_AUTH_DIR", str(base.auth_dir))).resolve(),
            client_certs="require" if mode == "require" else "none",
            revocation_refresh_s=float(
                env.get("ROWCAST_REVOCATION_REFRESH_S", base.revocation_refresh_s)
            ),
        )
        return secured.insecure() if insecure else secured


@dataclass(frozen=True)
class FidelityDrop:
    """How much worse a version's table may answer its evaluation data set's held-out rows
    than its raw model before the verification gate refuses READY (ROWCAST_MAX_FIDELITY_DROP,
    e.g. `auc=0.02,rmse=0.1`; `off`: no limit)."""

    #: Largest AUC drop, raw model minus table, in AUC points (probability models).
    auc: float = 0.02
    #: Largest relative RMSE rise, (table - raw) / raw (regressions): 0.1 is 10 %.
    rmse: float = 0.10

    @classmethod
    def parse(cls, value: str) -> FidelityDrop:
        text = value.strip().lower()
        if text == "off":
            return cls(math.inf, math.inf)
        limits: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, number = part.partition("=")
            try:
                limit = float(number) if sep and name.strip() in ("auc", "rmse") else None
            except ValueError:
                limit = None
            if limit is None:
                raise ValueError(
                    "ROWCAST_MAX_FIDELITY_DROP is `auc=X,rmse=Y` (either may be left out) "
                    f"or `off`, got {value!r}"
                )
            if not limit >= 0:
                raise ValueError(f"ROWCAST_MAX_FIDELITY_DROP: {name} must be >= 0, got {number}")
            limits[name.strip()] = limit
        return cls(**limits)


@dataclass(frozen=True)
class Settings:
    """Everything a rowcast process needs, built once."""

    hbase: HBaseSettings = field(default_factory=HBaseSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    tracing: TracingSettings = field(default_factory=TracingSettings)
    logs: LogSettings = field(default_factory=LogSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    #: Pre-split regions (and salt buckets) of every prediction table.
    salt_buckets: int = 16
    #: Largest grid a version may have before materialisation refuses it.
    max_grid_rows: int = 50_000_000
    #: Rows per second a materialisation writes at most, so that it never pushes lookup
    #: latency past its goals (docs/materialize.md); None writes as fast as HBase takes them.
    #: MaterializeVersion's `rows_per_second_limit` may only lower it for one run.
    materialize_rows_per_second: float | None = 5_000.0
    #: Decisions per second `rowcast audit export` reads at most (None: no limit).
    export_rows_per_second: float | None = 5_000.0
    #: The verification gate's limit on the table's fidelity loss (docs/materialize.md).
    max_fidelity_drop: FidelityDrop = field(default_factory=FidelityDrop)
    #: Where the Spark engine writes HFiles before the bulk load: an absolute local path or a
    #: URI (hdfs://namenode:8020/rowcast/staging on a cluster); None: the temporary directory.
    spark_staging: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `ROWCAST_*` environment variables over the defaults."""
        env = os.environ if env is None else env
        hb = HBaseSettings()
        hb = replace(
            hb,
            host=env.get("ROWCAST_HBASE_HOST", hb.host),
            thrift_port=int(env.get("ROWCAST_HBASE_THRIFT_PORT", hb.thrift_port)),
            thrift2_port=int(env.get("ROWCAST_HBASE_THRIFT2_PORT", hb.thrift2_port)),
            zookeeper_port=int(env.get("ROWCAST_HBASE_ZK_PORT", hb.zookeeper_port)),
            master_port=int(env.get("ROWCAST_HBASE_MASTER_PORT", hb.master_port)),
            regionserver_port=int(env.get("ROWCAST_HBASE_RS_PORT", hb.regionserver_port)),
            timeout_s=float(env.get("ROWCAST_HBASE_TIMEOUT_S", hb.timeout_s)),
            pool_size=int(env.get("ROWCAST_HBASE_POOL_SIZE", hb.pool_size)),
            master_heap=env.get("ROWCAST_HBASE_HEAP", hb.master_heap),
            home=Path(env.get("ROWCAST_HOME", str(hb.home))).resolve(),
            thrift_gateways=_gateways(
                env.get("ROWCAST_HBASE_GATEWAYS", ""), "ROWCAST_HBASE_GATEWAYS"
            ),
            thrift2_gateways=_gateways(
                env.get("ROWCAST_HBASE_THRIFT2_GATEWAYS", ""), "ROWCAST_HBASE_THRIFT2_GATEWAYS"
            ),
            region_replication=_positive_int(
                env.get("ROWCAST_HBASE_REGION_REPLICATION", "1"), "ROWCAST_HBASE_REGION_REPLICATION"
            ),
            read_consistency=_consistency(env.get("ROWCAST_HBASE_READ_CONSISTENCY", "")),
            gateway_attempt_timeout_s=_positive_float(
                env.get("ROWCAST_HBASE_ATTEMPT_TIMEOUT_S", str(hb.gateway_attempt_timeout_s)),
                "ROWCAST_HBASE_ATTEMPT_TIMEOUT_S",
            ),
            gateway_retry_s=_positive_float(
                env.get("ROWCAST_HBASE_GATEWAY_RETRY_S", str(hb.gateway_retry_s)),
                "ROWCAST_HBASE_GATEWAY_RETRY_S",
            ),
        )
        sv = ServerSettings()
        sv = replace(
            sv,
            host=env.get("ROWCAST_HOST", sv.host),
            prediction_port=int(env.get("ROWCAST_PREDICTION_PORT", sv.prediction_port)),
            audit_port=int(env.get("ROWCAST_AUDIT_PORT", sv.audit_port)),
            model_port=int(env.get("ROWCAST_MODEL_PORT", sv.model_port)),
            audit_enabled=_flag(env.get("ROWCAST_AUDIT", "on"), "ROWCAST_AUDIT"),
            audit_durability=_durability(env.get("ROWCAST_AUDIT_DURABILITY", sv.audit_durability)),
            audit_spool_max_bytes=int(
                env.get("ROWCAST_AUDIT_SPOOL_MAX_BYTES", sv.audit_spool_max_bytes)
            ),
            cache_size=int(env.get("ROWCAST_CACHE_SIZE", sv.cache_size)),
            missing_row_default=(
                float(env["ROWCAST_MISSING_ROW_DEFAULT"])
                if env.get("ROWCAST_MISSING_ROW_DEFAULT")
                else None
            ),
            max_in_flight=int(env.get("ROWCAST_MAX_IN_FLIGHT", sv.max_in_flight)),
            reuse_port=_flag(env.get("ROWCAST_REUSE_PORT", "off"), "ROWCAST_REUSE_PORT"),
            registry_watch=_flag(env.get("ROWCAST_REGISTRY_WATCH", "on"), "ROWCAST_REGISTRY_WATCH"),
            propagation_timeout_s=float(
                env.get("ROWCAST_PROPAGATION_TIMEOUT_S", sv.propagation_timeout_s)
            ),
        )
        return cls(
            hbase=hb,
            server=sv,
            metrics=MetricsSettings.from_env(env),
            tracing=TracingSettings.from_env(env),
            logs=LogSettings.from_env(env),
            security=SecuritySettings.from_env(env, hb.home),
            salt_buckets=int(env.get("ROWCAST_SALT_BUCKETS", 16)),
            max_grid_rows=int(env.get("ROWCAST_MAX_GRID_ROWS", 50_000_000)),
            materialize_rows_per_second=_rate(
                env.get("ROWCAST_MATERIALIZE_ROWS_PER_SECOND", "5000"),
                "ROWCAST_MATERIALIZE_ROWS_PER_SECOND",
            ),
            export_rows_per_second=_rate(
                env.get("ROWCAST_EXPORT_ROWS_PER_SECOND", "5000"), "ROWCAST_EXPORT_ROWS_PER_SECOND"
            ),
            max_fidelity_drop=FidelityDrop.parse(env.get("ROWCAST_MAX_FIDELITY_DROP", "")),
            spark_staging=_staging(env.get("ROWCAST_SPARK_STAGING", "")),
        )


def _staging(value: str) -> str | None:
    """ROWCAST_SPARK_STAGING: empty (the temporary directory), else `check_staging`'s."""
    value = value.strip()
    return check_staging(value, "ROWCAST_SPARK_STAGING") if value else None


def check_staging(value: str, name: str) -> str:
    """A Spark staging directory: an absolute path or a URI with a path
    (scheme://authority/path); ValueError naming `name` otherwise. The one rule for the
    setting and for `SparkOptions.staging` (jobs/spark/staging.py)."""
    scheme, sep, rest = value.partition("://")
    if not (value.startswith("/") or (sep and scheme.isalpha() and "/" in rest)):
        raise ValueError(
            f"{name} must be an absolute path or a URI with a path such as "
            f"hdfs://namenode:8020/rowcast/staging, got {value!r}"
        )
    return value


def _rate(value: str, name: str) -> float | None:
    """A positive rate, or None for 0 (no limit)."""
    rate = float(value)
    if rate < 0:
        raise ValueError(f"{name} must be 0 (no limit) or positive, got {value!r}")
    return rate or None


def _gateways(value: str, name: str) -> tuple[str, ...]:
    """Comma-separated "host:port" list; empty means the single default gateway."""
    gateways = tuple(part.strip() for part in value.split(",") if part.strip())
    for gateway in gateways:
        host, sep, port = gateway.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{name} must be comma-separated host:port, got {gateway!r}")
    return gateways


def _positive_int(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of 1 or more, got {value!r}") from None
    if number < 1:
        raise ValueError(f"{name} must be a whole number of 1 or more, got {value!r}")
    return number


def _positive_float(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return number


def _consistency(value: str) -> Literal["timeline", "strong"] | None:
    lowered = value.strip().lower()
    if not lowered:
        return None
    if lowered == "timeline":
        return "timeline"
    if lowered == "strong":
        return "strong"
    raise ValueError(f"ROWCAST_HBASE_READ_CONSISTENCY must be timeline or strong, got {value!r}")


def _flag(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"on", "1", "true", "yes"}:
        return True
    if lowered in {"off", "0", "false", "no"}:
        return False
    raise ValueError(f"{name} must be on or off, got {value!r}")


def _durability(value: str) -> Literal["process", "fsync"]:
    if value == "process":
        return "process"
    if value == "fsync":
        return "fsync"
    raise ValueError(f"ROWCAST_AUDIT_DURABILITY must be process or fsync, got {value!r}")
