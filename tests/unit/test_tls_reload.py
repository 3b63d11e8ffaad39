"""A server re-reads its TLS certificate and key when asked (SIGHUP on `rowcast serve`): new
connections get the new certificate, without a restart."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rowcast.config import SecuritySettings
from rowcast.security.certs import init_ca
from rowcast.security.runtime import ReloadableTls
from rowcast.server import start_server


async def _check(port: int, ca: bytes) -> bool:
    async with grpc.aio.secure_channel(
        f"localhost:{port}", grpc.ssl_channel_credentials(ca)
    ) as channel:
        try:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=3
            )
        except grpc.aio.AioRpcError:
            return False
        return True


@pytest.mark.asyncio
async def test_reload_serves_the_new_certificate_to_new_connections(tmp_path: Path) -> None:
    sec = SecuritySettings(tls_dir=tmp_path / "tls", auth_dir=tmp_path / "auth", auth=False)
    init_ca(sec.tls_dir)
    old_ca = sec.ca_file.read_bytes()
    tls = ReloadableTls(sec)
    running = await start_server(lambda s: None, [], "127.0.0.1", 0, credentials=tls.credentials)
    try:
        assert await _check(running.port, old_ca)
        init_ca(sec.tls_dir, force=True)  # a new CA and server certificate on disk
        new_ca = sec.ca_file.read_bytes()
        assert await _check(running.port, old_ca), "files alone change nothing before a reload"
        tls.request_reload()
        assert await _check(running.port, new_ca)
        assert not await _check(running.port, old_ca)
        assert tls.reloads == 1
    finally:
        await running.stop(0)


@pytest.mark.asyncio
async def test_a_broken_file_at_reload_keeps_the_certificate_in_use(tmp_path: Path) -> None:
    sec = SecuritySettings(tls_dir=tmp_path / "tls", auth_dir=tmp_path / "auth", auth=False)
    init_ca(sec.tls_dir)
    ca = sec.ca_file.read_bytes()
    tls = ReloadableTls(sec)
    running = await start_server(lambda s: None, [], "127.0.0.1", 0, credentials=tls.credentials)
    try:
        sec.key_file.unlink()
        tls.request_reload()
        assert await _check(running.port, ca)
        assert tls.reloads == 0
    finally:
        await running.stop(0)
