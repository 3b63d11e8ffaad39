"""Everything a chaos run starts: a standalone HBase, one AuditService and N prediction servers,
each its own OS process on a fixed loopback port, and the teardown of all of it.

The services run secure, as in production: TLS with the home's certificates, tokens checked
on every call (the prediction servers' audit stream included), made when missing as `rowcast
suite up` makes them; the load calls with a predictor token of its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, replace
from pathlib import Path

from rowcast.config import HBaseSettings, SecuritySettings, Settings
from rowcast.security.identity import Role
from rowcast_cli.security_cmd import init_security, write_token
from rowcast_client import Credentials
from rowcast_dev.chaos.services import ServiceProcess
from rowcast_dev.hbase.ports import free_ports, on_free_ports
from rowcast_dev.hbase.runtime import Component, HBaseError, StandaloneHBase

log = logging.getLogger(__name__)

#: HBase start attempts after a kill; a start can fail while the killed JVM's ports linger.
HBASE_START_ATTEMPTS = 3
#: The load's token (role predictor) under the home's auth/, and how long it lives.
LOAD_TOKEN = "chaos-load.token"
LOAD_TOKEN_TTL_S = 7 * 86_400


@dataclass(frozen=True)
class ClusterSpec:
    """Where the run's HBase lives and how its services are set up."""

    home: Path
    prediction_servers: int = 2
    durability: str = "process"
    #: Seconds per HBase call in the services (kept short so faults surface quickly).
    hbase_timeout_s: float = 5.0
    hbase_start_timeout_s: float = 240.0


def hbase_settings(home: Path) -> HBaseSettings:
    """The run's HBase: the one already running in home (its ports), else new free ports."""
    wanted = on_free_ports(HBaseSettings(home=home.resolve()))
    return StandaloneHBase(wanted).effective_settings()


def load_credentials(sec: SecuritySettings) -> Credentials:
    """The home's CA, certificates and keys (made when missing) and a chaos load's credentials:
    the CA and a predictor token of its own."""
    init_security(sec)
    token = sec.auth_dir / LOAD_TOKEN
    write_token(sec, "chaos-load", frozenset({Role.PREDICTOR}), LOAD_TOKEN_TTL_S, token)
    return Credentials.from_files(sec.ca_file, token_file=token)


class Cluster:
    """Starts the run's processes, kills and restarts them on request, and stops what it
    started (HBase only if this run started it)."""

    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        hb = replace(hbase_settings(spec.home), timeout_s=spec.hbase_timeout_s)
        self.settings = Settings(hbase=hb, security=SecuritySettings.under(hb.home))
        self.hbase = StandaloneHBase(hb)
        self.started_hbase = False
        self._stopped: set[Component] = set()
        audit_port, *prediction_ports = free_ports(1 + spec.prediction_servers)
        logs = spec.home / "logs"
        sec = self.settings.security
        self.audit = ServiceProcess(
            "audit", "audit", audit_port, self._env(audit_port), logs / "chaos-audit.log", sec
        )
        self.predictions = [
            ServiceProcess(
                f"prediction-{i}",
                "prediction",
                port,
                self._env(audit_port),
                logs / f"chaos-prediction-{i}.log",
                sec,
            )
            for i, port in enumerate(prediction_ports)
        ]

    def prepare_security(self) -> Credentials:
        """The home's CA, certificates and keys (made when missing) and the load's credentials:
        the CA and a predictor token."""
        return load_credentials(self.settings.security)

    def _env(self, audit_port: int) -> dict[str, str]:
        hb = self.settings.hbase
        sec = self.settings.security
        return {
            "ROWCAST_HOME": str(hb.home),
            "ROWCAST_HBASE_HOST": hb.host,
            "ROWCAST_HBASE_THRIFT_PORT": str(hb.thrift_port),
            "ROWCAST_HBASE_THRIFT2_PORT": str(hb.thrift2_port),
            "ROWCAST_HBASE_TIMEOUT_S": str(self.spec.hbase_timeout_s),
            "ROWCAST_HOST": "127.0.0.1",
            "ROWCAST_AUDIT_PORT": str(audit_port),
            "ROWCAST_AUDIT_DURABILITY": self.spec.durability,
            # Several prediction servers on one machine: each binds a free metrics port.
            "ROWCAST_PREDICTION_METRICS_PORT": "0",
            "ROWCAST_AUDIT_METRICS_PORT": "0",
            # Secure whatever the caller's environment says: the run checks the real thing.
            "ROWCAST_INSECURE": "off",
            "ROWCAST_TLS_DIR": str(sec.tls_dir),
            "ROWCAST_AUTH_DIR": str(sec.auth_dir),
            "ROWCAST_CLIENT_CERTS": "none",
        }

    @property
    def services(self) -> list[ServiceProcess]:
        return [self.audit, *self.predictions]

    @property
    def spool_root(self) -> Path:
        return self.settings.hbase.home / "spool"

    async def start_hbase(self, *, first: bool = False) -> None:
        """Start HBase, or whichever of its JVMs is not running, and wait until it is ready.

        The first call decides whether this run owns HBase (and stops it at the end): not
        when it was already running in the home it was pointed at."""
        if first:
            # Decided before starting, so that a run cancelled mid-start still stops it.
            self.started_hbase = not self.hbase.is_running()
        for attempt in range(1, HBASE_START_ATTEMPTS + 1):
            try:
                await asyncio.to_thread(self.hbase.start, self.spec.hbase_start_timeout_s)
            except HBaseError as exc:
                if attempt == HBASE_START_ATTEMPTS:
                    raise
                log.warning("HBase start attempt %d failed: %s; retrying", attempt, exc)
                # A master JVM that runs but never gets ready (its in-process regionserver
                # aborted, regions stuck in transition) is restarted, as a supervisor would.
                with contextlib.suppress(HBaseError):
                    self.hbase.kill("master", signal.SIGKILL)
                await asyncio.sleep(2.0 * attempt)
                continue
            return

    async def start_services(self) -> None:
        await self.audit.start()
        for p in self.predictions:
            await p.start()

    def kill_hbase(self, component: Component) -> None:
        self.hbase.kill(component, signal.SIGKILL)

    def pause_hbase(self, component: Component) -> None:
        self._stopped.add(component)
        self.hbase.kill(component, signal.SIGSTOP)

    def resume_hbase(self, component: Component) -> None:
        self.hbase.kill(component, signal.SIGCONT)
        self._stopped.discard(component)

    async def down(self, grace_s: float = 10.0) -> None:
        """Stop everything this run started: prediction servers first (they drain into the
        AuditService for grace_s), then the AuditService, then HBase if this run started it."""
        for component in list(self._stopped):
            with contextlib.suppress(HBaseError):
                self.resume_hbase(component)
        for p in self.predictions:
            await p.stop(grace_s)
        await self.audit.stop(grace_s)
        if self.started_hbase:
            await asyncio.to_thread(self.hbase.stop, 30.0)

    def down_now(self) -> None:
        """Cleanup when the event loop is gone: SIGKILL the services, stop HBase."""
        for component in list(self._stopped):
            with contextlib.suppress(HBaseError):
                self.resume_hbase(component)
        for service in self.services:
            service.kill_now()
        if self.started_hbase:
            self.hbase.stop(30.0)
