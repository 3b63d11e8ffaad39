"""Server subprocesses for a benchmark: started pinned to the server core, ready when their
gRPC health check says SERVING, and always stopped again (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rowcast_bench.tools import pinned

_STOP_GRACE_S: Final = 10.0
_KILL_WAIT_S: Final = 5.0


class ServerStartError(Exception):
    """A server subprocess exited or did not become SERVING in time (message has its log)."""


@dataclass(frozen=True)
class ServerSpec:
    """How to run one server: its name, command line, extra environment and port, and the CA
    its TLS certificate is checked against (None: it serves plain text)."""

    name: str
    argv: Sequence[str]
    port: int
    env: Mapping[str, str] = field(default_factory=dict)
    ca_file: Path | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def rowcast_serve(service: str, port: int) -> list[str]:
    """The command line of `rowcast serve <service>` with this interpreter."""
    return [sys.executable, "-m", "rowcast_cli.main", "serve", service, "--port", str(port)]


def module_main(module: str, *args: str) -> list[str]:
    """The command line of `python -m module args...` with this interpreter."""
    return [sys.executable, "-m", module, *args]


class ServerProcess:
    """One running server subprocess that this harness started, pinned to `cpu` (if given)."""

    def __init__(self, spec: ServerSpec, cpu: int | None, log_dir: Path) -> None:
        self.spec = spec
        self.log_path = log_dir / f"{spec.name}.log"
        env = {**os.environ, **spec.env}
        self._log: IO[bytes] = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        argv = list(spec.argv) if cpu is None else pinned(cpu, list(spec.argv))
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            # Its own process group: Ctrl-C at the harness reaches it only through stop().
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self._proc.pid

    def wait_serving(self, timeout_s: float) -> None:
        """Block until the health check answers SERVING; raise if it exits or times out."""
        deadline = time.monotonic() + timeout_s
        with _channel(self.spec) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                if self._proc.poll() is not None:
                    raise ServerStartError(
                        f"{self.spec.name} exited with code {self._proc.returncode}:\n"
                        + self.log_tail()
                    )
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    raise ServerStartError(
                        f"{self.spec.name} not SERVING after {timeout_s:g}s:\n" + self.log_tail()
                    )
                time.sleep(0.2)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM (graceful stop), SIGKILL after a grace period; idempotent."""
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self._proc.kill()
                self._proc.wait(_KILL_WAIT_S)
        self._log.close()


def _channel(spec: ServerSpec) -> grpc.Channel:
    """A channel for the health check (which needs no token): TLS when the server serves it."""
    if spec.ca_file is None:
        return grpc.insecure_channel(spec.target)
    tls = grpc.ssl_channel_credentials(spec.ca_file.read_bytes())
    return grpc.secure_channel(spec.target, tls)


@contextlib.contextmanager
def running(
    specs: Sequence[ServerSpec], cpu: int | None, log_dir: Path, start_timeout_s: float = 60.0
) -> Iterator[list[ServerProcess]]:
    """Start the servers in order, wait until each is SERVING, stop all on the way out."""
    started: list[ServerProcess] = []
    try:
        for spec in specs:
            proc = ServerProcess(spec, cpu, log_dir)
            started.append(proc)
            proc.wait_serving(start_timeout_s)
        yield started
    finally:
        for proc in reversed(started):
            proc.stop()
