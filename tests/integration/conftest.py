"""A real standalone HBase on free ports, the demo model published into it (v1 active, v2
READY), and the three real gRPC servers on free ports, shared by the integration tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from rowcast.apps import start_audit_server, start_model_server, start_prediction_server
from rowcast.config import HBaseSettings, MetricsSettings, ServerSettings, Settings
from rowcast.jobs.publish import PublishResult, PublishSpec, publish
from rowcast.jobs.train import TrainParams
from rowcast.server import RunningServer
from rowcast.store.client import HBaseClient
from rowcast.store.registry import Registry
from rowcast.v1 import resources_pb2 as pb
from rowcast_client import AsyncRowcastClient, NotFoundError, Targets
from rowcast_dev.hbase.ports import on_free_ports
from rowcast_dev.hbase.runtime import StandaloneHBase

MODEL = "credit_default"


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home: Path = tmp_path_factory.mktemp("rowcast-home")
    return Settings(
        hbase=on_free_ports(HBaseSettings(home=home, timeout_s=5.0)),
        server=ServerSettings(registry_refresh_s=0.1, grace_s=2.0),
        # Several servers per process, and other test sessions on this machine: free ports.
        metrics=MetricsSettings(prediction_port=0, audit_port=0, model_port=0),
    )


@pytest.fixture(scope="session")
def hbase(settings: Settings) -> Iterator[StandaloneHBase]:
    hb = StandaloneHBase(settings.hbase)
    hb.start(timeout_s=240)
    yield hb
    hb.stop()


@dataclass(frozen=True)
class Published:
    v1: PublishResult
    v2: PublishResult


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def published(settings: Settings, hbase: StandaloneHBase) -> Published:
    v1 = await publish(settings, PublishSpec(model=MODEL, activate=True))
    v2 = await publish(
        settings,
        PublishSpec(model=MODEL, params=TrainParams(num_leaves=31, seed=11), activate=False),
    )
    return Published(v1, v2)


@dataclass(frozen=True)
class Suite:
    prediction: RunningServer
    audit: RunningServer
    model: RunningServer

    @property
    def targets(self) -> Targets:
        return Targets(
            prediction=f"127.0.0.1:{self.prediction.port}",
            audit=f"127.0.0.1:{self.audit.port}",
            model=f"127.0.0.1:{self.model.port}",
        )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def suite(settings: Settings, published: Published) -> AsyncIterator[Suite]:
    audit = await start_audit_server(settings, 0)
    model = await start_model_server(settings, 0)
    prediction = await start_prediction_server(settings, 0, audit_target=f"127.0.0.1:{audit.port}")
    yield Suite(prediction, audit, model)
    for running in (prediction, audit, model):
        await running.stop(1.0)


@pytest_asyncio.fixture(loop_scope="session")
async def client(suite: Suite) -> AsyncIterator[AsyncRowcastClient]:
    async with AsyncRowcastClient(suite.targets, timeout_s=5.0) as c:
        yield c


async def registered_version(settings: Settings, model: str = MODEL) -> int:
    """A new version of `model` that stays REGISTERED (never materialised), made through the
    registry store directly: what a version looks like before MaterializeVersion."""
    store = HBaseClient(settings.hbase)
    try:
        return (
            await Registry.over(store).versions.new_version(model, "test", timeout_s=30.0)
        ).version
    finally:
        store.close()


async def audited(client: AsyncRowcastClient, decision_id: str) -> pb.Decision:
    """Decisions reach the audit table asynchronously (spool, stream, HBase writes); wait up to
    30 s for one: a loaded CI machine has been seen to need more than 10 s."""
    for _ in range(300):
        try:
            return await client.get_decision(decision_id)
        except NotFoundError:
            await asyncio.sleep(0.1)
    return await client.get_decision(decision_id)
