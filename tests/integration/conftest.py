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
from rowcast.config import (
    HBaseSettings,
    MetricsSettings,
    SecuritySettings,
    ServerSettings,
    Settings,
)
from rowcast.jobs.publish import PublishResult, PublishSpec, publish
from rowcast.jobs.train import TrainParams
from rowcast.security.identity import Role
from rowcast.server import RunningServer
from rowcast.store.client import HBaseClient
from rowcast.store.registry import Registry
from rowcast.v1 import resources_pb2 as pb
from rowcast_cli.security_cmd import init_security, write_token
from rowcast_client import AsyncRowcastClient, Credentials, NotFoundError, Targets
from rowcast_dev.hbase.ports import on_free_ports
from rowcast_dev.hbase.runtime import StandaloneHBase

MODEL = "credit_default"

#: The tokens the tests' home holds (auth/<file>), as `rowcast suite up` writes its own: the
#: CLI run by a test finds admin.token (and tls/ca.pem) there through ROWCAST_HOME. The tester
#: has every role but approver: an approval needs another identity (approver.token).
TEST_TOKENS: dict[str, tuple[str, frozenset[Role]]] = {
    "admin.token": ("tester", frozenset(Role) - {Role.APPROVER}),
    "approver.token": ("approver-1", frozenset({Role.APPROVER, Role.AUDITOR, Role.READER})),
}


def secure(home: Path) -> SecuritySettings:
    """TLS and token authentication on, as in production: the CA, keys and tokens made under
    `home` by the same code as `rowcast auth init` / `rowcast suite up`."""
    security = SecuritySettings.under(home)
    init_security(security)
    for file, (name, roles) in TEST_TOKENS.items():
        if not (security.auth_dir / file).exists():
            write_token(security, name, roles, 86_400, security.auth_dir / file)
    return security


def credentials(security: SecuritySettings, token_file: str = "admin.token") -> Credentials:
    """Client credentials: the suite's CA and one of its tokens."""
    return Credentials.from_files(security.ca_file, token_file=security.auth_dir / token_file)


def service_env(settings: Settings) -> dict[str, str]:
    """What a `rowcast` subprocess needs to reach this HBase and call these servers with the
    tester's token (found under ROWCAST_HOME)."""
    hb = settings.hbase
    return {
        "ROWCAST_HOME": str(hb.home),
        "ROWCAST_HBASE_HOST": hb.host,
        "ROWCAST_HBASE_THRIFT_PORT": str(hb.thrift_port),
        "ROWCAST_HBASE_THRIFT2_PORT": str(hb.thrift2_port),
        "ROWCAST_HBASE_ZK_PORT": str(hb.zookeeper_port),
        "ROWCAST_HOST": settings.server.host,
    }


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home: Path = tmp_path_factory.mktemp("rowcast-home")
    return Settings(
        hbase=on_free_ports(HBaseSettings(home=home, timeout_s=5.0)),
        server=ServerSettings(registry_refresh_s=0.1, grace_s=2.0),
        # Several servers per process, and other test sessions on this machine: free ports.
        metrics=MetricsSettings(prediction_port=0, audit_port=0, model_port=0),
        security=secure(home),
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

    security: SecuritySettings

    @property
    def targets(self) -> Targets:
        """The three servers, called with the tester's token over TLS."""
        return self.targets_as("admin.token")

    def targets_as(self, token_file: str | None) -> Targets:
        """The three servers, called with another token of the home (None: TLS, no token)."""
        return Targets(
            prediction=f"127.0.0.1:{self.prediction.port}",
            audit=f"127.0.0.1:{self.audit.port}",
            model=f"127.0.0.1:{self.model.port}",
            credentials=(
                credentials(self.security, token_file)
                if token_file is not None
                else Credentials.from_files(self.security.ca_file)
            ),
        )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def suite(settings: Settings, published: Published) -> AsyncIterator[Suite]:
    audit = await start_audit_server(settings, 0)
    model = await start_model_server(settings, 0)
    prediction = await start_prediction_server(settings, 0, audit_target=f"127.0.0.1:{audit.port}")
    yield Suite(prediction, audit, model, settings.security)
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
