"""One rowcast service as an OS process of its own (`rowcast serve <service> --port P`), so a
chaos run can kill -9 it and start it again on the same port (and so the same spool)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rowcast.config import SecuritySettings
from rowcast_dev.suite import health_serving


class ServiceStartError(Exception):
    """A service process exited or did not report SERVING in time; carries its log's tail."""


class ServiceProcess:
    """Starts, kills and stops one `rowcast serve` process; it owns the Popen handle, so it
    only ever signals the process it started itself."""

    def __init__(
        self,
        name: str,
        service: str,
        port: int,
        env: dict[str, str],
        log_file: Path,
        security: SecuritySettings | None = None,
    ) -> None:
        self.name = name
        self.service = service
        self.port = port
        self._env = env
        self._log_file = log_file
        #: How the health check reaches it (TLS against the CA); None: plain text.
        self._security = security
        self._proc: subprocess.Popen[bytes] | None = None
        #: Processes started, the first start included.
        self.starts = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _spawn(self) -> subprocess.Popen[bytes]:
        self._log_file.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "rowcast_cli.main", "serve", self.service]
        with self._log_file.open("ab") as log:
            return subprocess.Popen(
                [*argv, "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own session: a Ctrl-C in the terminal reaches the chaos run only, which
                # then stops its services in order.
                start_new_session=True,
                env={**os.environ, **self._env},
            )

    async def start(self, timeout_s: float = 60.0) -> None:
        """Start the process and wait until its health check answers SERVING."""
        if self.pid is not None:
            return
        self._proc = self._spawn()
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while not await asyncio.to_thread(
            health_serving, "127.0.0.1", self.port, 0.5, self._security
        ):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                code = self._proc.poll()
                await self.stop(2.0)
                tail = self._log_file.read_text(errors="replace").splitlines()[-30:]
                how = f"exited with code {code}" if code is not None else "did not serve in time"
                raise ServiceStartError(f"{self.name} {how}:\n" + "\n".join(tail))
            await asyncio.sleep(0.2)

    async def kill(self) -> None:
        """SIGKILL: no graceful stop, no spool drain; wait until the kernel has reaped it."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise ServiceStartError(f"{self.name} is not running")
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait)

    async def stop(self, grace_s: float) -> None:
        """SIGTERM (graceful: the server drains its spool for a while), SIGKILL after grace_s."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, grace_s)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                await asyncio.to_thread(proc.wait)
        self._proc = None

    def kill_now(self) -> None:
        """Last-resort cleanup (no event loop needed): SIGKILL and reap."""
        proc = self._proc
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
            self._proc = None
