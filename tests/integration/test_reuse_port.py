"""Several prediction server processes share one port when asked (SO_REUSEPORT), and only
then."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from rowcast.config import Settings
from rowcast.server import start_server
from rowcast_client import AsyncRowcastClient
from rowcast_dev.hbase.ports import free_port
from rowcast_dev.suite import health_serving
from tests.integration.conftest import MODEL, Published, Suite, service_env


def listeners(port: int) -> set[int]:
    """Pids of processes listening on 127.0.0.1:port (from ss)."""
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True)
    return {
        int(p.split("=")[1]) for p in out.stdout.replace(",", " ").split() if p.startswith("pid=")
    }


async def test_two_processes_serve_one_port(
    settings: Settings, suite: Suite, published: Published
) -> None:
    """`rowcast serve prediction --processes 2` binds one port twice and answers Predict."""
    port = free_port()
    env = {
        **os.environ,
        **service_env(settings),
        "ROWCAST_AUDIT_PORT": suite.targets.audit.rsplit(":", 1)[1],
        "ROWCAST_PREDICTION_METRICS_PORT": "0",  # free ones, beside any suite on this machine
    }
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "rowcast_cli.main", "serve", "prediction"),
        *("--port", str(port), "--processes", "2"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while len(listeners(port)) < 2 or not health_serving(
            "127.0.0.1", port, security=suite.security
        ):
            assert proc.returncode is None, "serve exited early"
            assert time.monotonic() < deadline, "two listeners did not come up"
            await asyncio.sleep(0.3)
        assert len(listeners(port)) == 2
        async with AsyncRowcastClient(
            replace(suite.targets, prediction=f"127.0.0.1:{port}")
        ) as client:
            for _ in range(5):
                r = await client.predict(MODEL, {"balance": 800.0, "income": 1.0, "student": "No"})
                assert r.model_version == published.v1.version.version
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    assert listeners(port) == set()


async def test_port_sharing_is_off_by_default(suite: Suite) -> None:
    """Without the option, a second server cannot bind a port that is in use."""
    port = int(suite.targets.prediction.rsplit(":", 1)[1])
    with pytest.raises(RuntimeError):
        await start_server(lambda s: None, [], "127.0.0.1", port)
