"""Everything a serving chaos run starts: a multi-node HBase (`ClusterHBase`: ZooKeeper, HDFS,
a master, region servers, Thrift1 and Thrift2 gateways, each its own JVM) and the rowcast
services pointed at every gateway (an AuditService, a ModelService and prediction servers, each
its own `rowcast serve` process), and the teardown of all of it.

The services run secure, as `rowcast chaos audit` runs them (TLS, tokens on every call), with
the prediction cache off, so every Predict reads HBase: what is proven is the store's
availability, not the cache's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from rowcast.config import HBaseSettings, SecuritySettings, Settings
from rowcast_client import Credentials
from rowcast_dev.chaos.cluster import load_credentials
from rowcast_dev.chaos.services import ServiceProcess
from rowcast_dev.hbase.cluster import ClusterHBase, ClusterOptions, recorded_options
from rowcast_dev.hbase.ports import free_ports, on_free_ports

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StackSpec:
    """Where the run's cluster lives and how it and the services are set up."""

    home: Path
    regionservers: int = 3
    gateways: int = 2
    region_replication: int = 2
    prediction_servers: int = 2
    durability: str = "process"
    #: Seconds per HBase call of the services' writes and jobs (point reads use the shorter
    #: per-gateway attempt timeout of HBaseSettings).
    hbase_timeout_s: float = 5.0
    #: The services' per-gateway attempt timeout of point reads (None: the settings' default).
    attempt_timeout_s: float | None = None
    hbase_start_timeout_s: float = 600.0


def service_env(
    hb: HBaseSettings, sec: SecuritySettings, audit_port: int, durability: str
) -> dict[str, str]:
    """The environment of a `rowcast serve` process that reaches every gateway of `hb`, streams
    its audit to `audit_port`, serves secure and caches nothing."""
    return {
        "ROWCAST_HOME": str(hb.home),
        "ROWCAST_HBASE_HOST": hb.host,
        "ROWCAST_HBASE_THRIFT_PORT": str(hb.thrift_port),
        "ROWCAST_HBASE_THRIFT2_PORT": str(hb.thrift2_port),
        "ROWCAST_HBASE_GATEWAYS": ",".join(hb.thrift_addresses()),
        "ROWCAST_HBASE_THRIFT2_GATEWAYS": ",".join(hb.thrift2_addresses()),
        "ROWCAST_HBASE_REGION_REPLICATION": str(hb.region_replication),
        "ROWCAST_HBASE_ATTEMPT_TIMEOUT_S": str(hb.gateway_attempt_timeout_s),
        "ROWCAST_HBASE_ZK_PORT": str(hb.zookeeper_port),
        "ROWCAST_HBASE_TIMEOUT_S": str(hb.timeout_s),
        # Every Predict reads HBase: the run measures the store, not the cache.
        "ROWCAST_CACHE_SIZE": "0",
        "ROWCAST_HOST": "127.0.0.1",
        "ROWCAST_AUDIT_PORT": str(audit_port),
        "ROWCAST_AUDIT_DURABILITY": durability,
        # Several servers on one machine: each binds a free metrics port.
        "ROWCAST_PREDICTION_METRICS_PORT": "0",
        "ROWCAST_AUDIT_METRICS_PORT": "0",
        "ROWCAST_MODEL_METRICS_PORT": "0",
        # Secure whatever the caller's environment says: the run checks the real thing.
        "ROWCAST_INSECURE": "off",
        "ROWCAST_TLS_DIR": str(sec.tls_dir),
        "ROWCAST_AUTH_DIR": str(sec.auth_dir),
        "ROWCAST_CLIENT_CERTS": "none",
    }


class ServingStack:
    """Starts the cluster (unless one already runs in the home) and the services, and stops what
    it started; the cluster only if this run started it."""

    def __init__(self, spec: StackSpec) -> None:
        self.spec = spec
        # A home that holds a cluster already comes back as it was created (its ports are
        # recorded); a new one takes free ports, also for the ones a cluster would otherwise
        # take from the defaults (ZooKeeper 21818, master 16000, ...), so that it runs beside
        # any other HBase on this machine.
        recorded = recorded_options(spec.home)
        settings = HBaseSettings(home=spec.home.resolve())
        self.hbase = ClusterHBase(
            settings if recorded is not None else on_free_ports(settings),
            recorded
            or ClusterOptions(
                regionservers=spec.regionservers,
                gateways=spec.gateways,
                region_replication=spec.region_replication,
            ),
        )
        self.started_hbase = False
        self._settings: Settings | None = None
        self.audit: ServiceProcess | None = None
        self.model: ServiceProcess | None = None
        self.predictions: list[ServiceProcess] = []

    @property
    def settings(self) -> Settings:
        """What the run's own clients (publish, meta reads, the audit check) use; known once
        the cluster runs (its ports are in its state file)."""
        if self._settings is None:
            hb = replace(self.hbase.client_settings(), timeout_s=self.spec.hbase_timeout_s)
            if self.spec.attempt_timeout_s is not None:
                hb = replace(hb, gateway_attempt_timeout_s=self.spec.attempt_timeout_s)
            self._settings = Settings(hbase=hb, security=SecuritySettings.under(hb.home))
        return self._settings

    @property
    def services(self) -> list[ServiceProcess]:
        named = [self.audit, self.model, *self.predictions]
        return [s for s in named if s is not None]

    @property
    def spool_root(self) -> Path:
        return self.settings.hbase.home / "spool"

    async def start_hbase(self) -> None:
        # Decided before starting, so that a run cancelled mid-start still stops it.
        self.started_hbase = not any(self.hbase.pids())
        ok = await asyncio.to_thread(self.hbase.start, self.spec.hbase_start_timeout_s)
        if not ok:
            log.info("the cluster was already running in %s", self.spec.home)

    def prepare_security(self) -> Credentials:
        return load_credentials(self.settings.security)

    async def start_services(self) -> None:
        hb, sec = self.settings.hbase, self.settings.security
        audit_port, model_port, *prediction_ports = free_ports(2 + self.spec.prediction_servers)
        env = service_env(hb, sec, audit_port, self.spec.durability)
        logs = hb.home / "logs"
        self.audit = ServiceProcess(
            "audit", "audit", audit_port, env, logs / "chaos-serving-audit.log", sec
        )
        self.model = ServiceProcess(
            "model", "model", model_port, env, logs / "chaos-serving-model.log", sec
        )
        self.predictions = [
            ServiceProcess(
                f"prediction-{i}",
                "prediction",
                port,
                env,
                logs / f"chaos-serving-prediction-{i}.log",
                sec,
            )
            for i, port in enumerate(prediction_ports)
        ]
        for service in self.services:
            await service.start()

    async def down(self, grace_s: float = 10.0) -> None:
        """Prediction servers first (they drain into the AuditService for grace_s), then the
        ModelService and the AuditService, then the cluster if this run started it."""
        for p in self.predictions:
            await p.stop(grace_s)
        for service in (self.model, self.audit):
            if service is not None:
                await service.stop(grace_s)
        if self.started_hbase:
            await asyncio.to_thread(self.hbase.stop, 60.0)

    def down_now(self) -> None:
        """Cleanup when the event loop is gone: SIGKILL the services, stop the cluster."""
        for service in self.services:
            service.kill_now()
        if self.started_hbase:
            with contextlib.suppress(Exception):
                self.hbase.stop(60.0)
