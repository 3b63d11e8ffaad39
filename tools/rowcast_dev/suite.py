"""Runs the three rowcast services as background processes on one machine (`rowcast suite`).

Each service is `rowcast serve <name>` started detached, with its pid file under
`<home>/run/` and its log under `<home>/logs/`. Started means its gRPC health check answers
SERVING; stopped means SIGTERM (graceful: in-flight calls finish, the audit queue drains),
then SIGKILL after a grace period, and no process left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rowcast.config import SecuritySettings, ServiceName, Settings

#: Start order: prediction servers send their decisions to audit.
SERVICES: tuple[ServiceName, ...] = ("audit", "model", "prediction")


class SuiteError(Exception):
    """A service could not be started; the message carries the end of its log."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    port: int
    pid: int | None
    serving: bool
    #: Where Prometheus scrapes it; None when metrics are off.
    metrics_url: str | None = None


def port_of(settings: Settings, name: ServiceName) -> int:
    return {
        "prediction": settings.server.prediction_port,
        "audit": settings.server.audit_port,
        "model": settings.server.model_port,
    }[name]


def metrics_url(settings: Settings, name: ServiceName) -> str | None:
    """The service's /metrics URL (its configured metrics port, as its gRPC port is)."""
    address = settings.metrics.address(name)
    if address is None:
        return None
    return f"http://{address.host}:{address.port}/metrics"


def _channel(address: str, security: SecuritySettings | None) -> grpc.Channel:
    """A channel for health checks: TLS checked against the suite's CA when TLS is on (the
    health service needs no token)."""
    if security is None or not security.tls or not security.ca_file.exists():
        return grpc.insecure_channel(address)
    return grpc.secure_channel(address, grpc.ssl_channel_credentials(security.ca_file.read_bytes()))


def health_serving(
    host: str, port: int, timeout_s: float = 1.0, security: SecuritySettings | None = None
) -> bool:
    try:
        with _channel(f"{host}:{port}", security) as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout_s
            )
    except grpc.RpcError:
        return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not reaped) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return False


class Suite:
    """Starts, inspects and stops the three service processes of one rowcast home."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._run = settings.hbase.home / "run"
        self._logs = settings.hbase.home / "logs"

    def _pid_file(self, name: str) -> Path:
        return self._run / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self._logs / f"{name}.log"

    def pid(self, name: str) -> int | None:
        try:
            pid = int(self._pid_file(name).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def status(self) -> list[ServiceStatus]:
        host = self._settings.server.host
        return [
            ServiceStatus(
                name,
                port_of(self._settings, name),
                self.pid(name),
                health_serving(
                    host, port_of(self._settings, name), security=self._settings.security
                ),
                metrics_url(self._settings, name),
            )
            for name in SERVICES
        ]

    def start(self, timeout_s: float = 180.0) -> list[ServiceStatus]:
        """Start the services not running; each gets `timeout_s` to report SERVING (a first
        start on a cluster creates the pre-split tables, ~10 s each on a loaded 2-core machine:
        60 s was measured to be too short)."""
        self._run.mkdir(parents=True, exist_ok=True)
        self._logs.mkdir(parents=True, exist_ok=True)
        for name in SERVICES:
            if self.pid(name) is not None:
                continue
            self._spawn(name, timeout_s)
        return self.status()

    def _spawn(self, name: ServiceName, timeout_s: float) -> None:
        host, port = self._settings.server.host, port_of(self._settings, name)
        security = self._settings.security
        if health_serving(host, port, 0.5) or health_serving(host, port, 0.5, security):
            raise SuiteError(
                f"port {port} already serves gRPC (another rowcast?); not starting {name}"
            )
        with self.log_file(name).open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "rowcast_cli.main", "serve", name],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **self._env()},
            )
        self._pid_file(name).write_text(str(proc.pid))
        deadline = time.monotonic() + timeout_s
        while not health_serving(host, port, 0.5, security):
            if proc.poll() is not None or time.monotonic() > deadline:
                self._stop_one(name, 2.0)
                tail = self.log_file(name).read_text(errors="replace").splitlines()[-30:]
                raise SuiteError(f"{name} service did not start:\n" + "\n".join(tail))
            time.sleep(0.2)

    def _env(self) -> dict[str, str]:
        s = self._settings
        return {
            "ROWCAST_HOME": str(s.hbase.home),
            "ROWCAST_HBASE_HOST": s.hbase.host,
            "ROWCAST_HBASE_THRIFT_PORT": str(s.hbase.thrift_port),
            "ROWCAST_HBASE_THRIFT2_PORT": str(s.hbase.thrift2_port),
            "ROWCAST_HOST": s.server.host,
            "ROWCAST_PREDICTION_PORT": str(s.server.prediction_port),
            "ROWCAST_AUDIT_PORT": str(s.server.audit_port),
            "ROWCAST_MODEL_PORT": str(s.server.model_port),
            "ROWCAST_METRICS": "on" if s.metrics.enabled else "off",
            "ROWCAST_METRICS_HOST": s.metrics.host,
            "ROWCAST_PREDICTION_METRICS_PORT": str(s.metrics.prediction_port),
            "ROWCAST_AUDIT_METRICS_PORT": str(s.metrics.audit_port),
            "ROWCAST_MODEL_METRICS_PORT": str(s.metrics.model_port),
            "ROWCAST_INSECURE": "off" if s.security.tls else "on",
            "ROWCAST_TLS_DIR": str(s.security.tls_dir),
            "ROWCAST_AUTH_DIR": str(s.security.auth_dir),
            "ROWCAST_CLIENT_CERTS": s.security.client_certs,
        }

    def stop(self, grace_s: float = 15.0) -> list[str]:
        """Stop every service (prediction first, so its audit queue drains into audit)."""
        return [name for name in reversed(SERVICES) if self._stop_one(name, grace_s)]

    def _stop_one(self, name: str, grace_s: float) -> bool:
        pid = self.pid(name)
        stopped = False
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
                while _alive(pid):
                    time.sleep(0.05)
            stopped = True
        self._pid_file(name).unlink(missing_ok=True)
        return stopped
