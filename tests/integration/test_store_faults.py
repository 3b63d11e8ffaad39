"""HBase outages surface as UNAVAILABLE within the caller's deadline, never as a hang, and the
servers recover by themselves when the Thrift gateway comes back."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest
import pytest_asyncio

from rowcast.apps import start_model_server, start_prediction_server
from rowcast.config import Settings
from rowcast_client import AsyncRowcastClient, Targets, UnavailableError
from rowcast_dev.hbase.ports import free_port
from rowcast_dev.hbase.runtime import StandaloneHBase
from tests.integration.conftest import MODEL, Published, Suite, audited, credentials

CUSTOMER: dict[str, float | str] = {"balance": 900.0, "income": 40_000.0, "student": "No"}


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts connections and never answers (like a SIGSTOPped gateway)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield listener.getsockname()[1]
    listener.close()


@pytest_asyncio.fixture(loop_scope="session", params=["refused", "silent"])
async def cut_off(
    request: pytest.FixtureRequest, settings: Settings, black_hole: int
) -> AsyncIterator[AsyncRowcastClient]:
    """Prediction and model servers whose HBase is unreachable (refused) or hangs (silent)."""
    port = free_port() if request.param == "refused" else black_hole
    hb = replace(settings.hbase, thrift_port=port, thrift2_port=port, timeout_s=3.0)
    cut = replace(settings, hbase=hb)
    prediction = await start_prediction_server(cut, 0, audit_target="127.0.0.1:1")
    model = await start_model_server(cut, 0)
    targets = Targets(
        prediction=f"127.0.0.1:{prediction.port}",
        model=f"127.0.0.1:{model.port}",
        credentials=credentials(settings.security),
    )
    async with AsyncRowcastClient(targets) as client:
        yield client
    await prediction.stop(0.5)
    await model.stop(0.5)


async def test_unreachable_hbase_is_unavailable_within_the_deadline(
    cut_off: AsyncRowcastClient,
) -> None:
    """With HBase unreachable, calls fail UNAVAILABLE before their 1 s deadline."""
    for call in (
        lambda: cut_off.predict(MODEL, CUSTOMER, timeout=1.0),
        lambda: cut_off.list_models(timeout=1.0),
    ):
        started = time.monotonic()
        with pytest.raises(UnavailableError):
            await call()
        assert time.monotonic() - started < 1.2


async def test_servers_survive_a_thrift_gateway_restart(
    client: AsyncRowcastClient,
    hbase: StandaloneHBase,
    published: Published,
    settings: Settings,
    suite: Suite,
) -> None:
    """Kill -9 the gateway: calls get UNAVAILABLE; restart it: the same servers answer again."""
    # No cache, so that every call needs the gateway.
    uncached = replace(settings, server=replace(settings.server, cache_size=0))
    server = await start_prediction_server(uncached, 0, audit_target=suite.targets.audit)
    try:
        async with AsyncRowcastClient(
            replace(suite.targets, prediction=f"127.0.0.1:{server.port}")
        ) as own:
            assert (
                await own.predict(MODEL, CUSTOMER)
            ).model_version == published.v1.version.version
            hbase.kill("thrift", signal.SIGKILL)
            try:
                await asyncio.sleep(0.5)
                with pytest.raises(UnavailableError):
                    await own.predict(MODEL, CUSTOMER, timeout=2.0)
            finally:
                await asyncio.to_thread(hbase.start, 120)
            r = await own.predict(MODEL, CUSTOMER, timeout=10.0)
            assert r.model_version == published.v1.version.version
    finally:
        await server.stop(1.0)
    assert (await audited(client, r.decision_id)).decision_id == r.decision_id
