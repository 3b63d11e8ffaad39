"""Activation and rollback under continuous Predict load, across two prediction servers that
learn of switches only by watching (their poll slowed to a minute): no failed request, no
mixed batch, every answer from the old or the new version, and every request started after
ActivateVersion / RollbackModel returned answered with the new version."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest
import pytest_asyncio

from rowcast.apps import start_prediction_server
from rowcast.config import Settings
from rowcast.server import RunningServer
from rowcast.v1 import model_service_pb2 as model_pb
from rowcast_client import AsyncRowcastClient, NotFoundError
from tests.integration.conftest import MODEL, Published, Suite

#: The documented bound for a switch to reach running prediction servers.
PROPAGATION_S = 1.0


@dataclass(frozen=True)
class Call:
    server: int
    started: float
    ended: float
    versions: tuple[int, ...]
    error: str = ""


async def drive(
    client: AsyncRowcastClient, server: int, stop: asyncio.Event, calls: list[Call], batch: bool
) -> None:
    i = 0
    while not stop.is_set():
        i += 1
        features: dict[str, float | str] = {
            "balance": float(100 + (i * 37) % 2_500),
            "income": 30_000.0,
            "student": "No",
        }
        started = time.monotonic()
        try:
            if batch:
                rs = await client.predict_batch(MODEL, [features] * 16, timeout=5.0)
                versions = tuple(r.model_version for r in rs)
            else:
                versions = ((await client.predict(MODEL, features, timeout=5.0)).model_version,)
            calls.append(Call(server, started, time.monotonic(), versions))
        except Exception as exc:
            calls.append(Call(server, started, time.monotonic(), (), repr(exc)))


def check_switch(
    calls: list[Call], old: int, new: int, asked: float, returned: float, until: float
) -> None:
    """Between the switch and `until`: each server answers with the new version within
    PROPAGATION_S of the call, and every call started after the switch returned carries it."""
    window = [c for c in calls if asked <= c.started < until]
    for server in {c.server for c in calls}:
        first_new = min(
            (c.ended for c in window if c.server == server and new in c.versions), default=None
        )
        assert first_new is not None, f"server {server} never answered with v{new}"
        assert first_new - asked < PROPAGATION_S, (server, first_new - asked)
    late = [c for c in window if c.started >= returned]
    assert len(late) > 20, "too few calls after the switch to judge it"
    stale = [c for c in late if c.versions != (new,) * len(c.versions)]
    assert stale == [], (f"{len(stale)} calls started after the switch got v{old}", stale[:3])


@dataclass(frozen=True)
class Watchers:
    servers: tuple[RunningServer, ...]

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{s.port}" for s in self.servers]


@pytest_asyncio.fixture(loop_scope="session")
async def watchers(settings: Settings, suite: Suite) -> AsyncIterator[Watchers]:
    """Two prediction servers whose poll is slowed to a minute: only the watch moves them."""
    slow = replace(settings, server=replace(settings.server, registry_refresh_s=60.0))
    servers = [
        await start_prediction_server(slow, 0, audit_target=suite.targets.audit) for _ in range(2)
    ]
    yield Watchers(tuple(servers))
    for s in servers:
        await s.stop(1.0)


def check_propagation(p: model_pb.Propagation, watchers: Watchers) -> None:
    """Both watching servers registered and acknowledged the switch before it returned."""
    assert p.generation > 0
    assert p.servers >= len(watchers.servers)
    for address in watchers.addresses:
        assert not any(lagging.startswith(f"{address} ") for lagging in p.lagging_servers), p


async def test_activation_and_rollback_under_load_lose_nothing(
    suite: Suite, published: Published, watchers: Watchers
) -> None:
    v1, v2 = published.v1.version.version, published.v2.version.version
    async with AsyncRowcastClient(suite.targets, timeout_s=10.0) as admin:
        assert (await admin.get_model(MODEL)).current_version == v1
        callers = [
            AsyncRowcastClient(replace(suite.targets, prediction=address))
            for address in watchers.addresses
        ]
        calls: list[Call] = []
        stop = asyncio.Event()
        workers = [
            asyncio.create_task(drive(callers[i % 2], i % 2, stop, calls, batch=i < 2))
            for i in range(6)
        ]
        try:
            await asyncio.sleep(1.0)
            asked = time.monotonic()
            activation = await admin.activate_version(MODEL, v2, actor="", reason="under load")
            activated = time.monotonic()
            await asyncio.sleep(2.0)
            asked_back = time.monotonic()
            rollback = await admin.rollback_model(MODEL, actor="", reason="roll back")
            rolled_back = time.monotonic()
            await asyncio.sleep(2.0)
        finally:
            stop.set()
            await asyncio.gather(*workers)
            for c in callers:
                await c.close()
            if (await admin.get_model(MODEL)).current_version != v1:
                await admin.activate_version(MODEL, v1, actor="", reason="restore")
    print(
        f"activation acknowledged by {activation.propagation.servers} server(s) in "
        f"{activation.propagation.wait.ToTimedelta().total_seconds():.3f} s; rollback in "
        f"{rollback.propagation.wait.ToTimedelta().total_seconds():.3f} s; {len(calls)} calls"
    )
    check_propagation(activation.propagation, watchers)
    check_propagation(rollback.propagation, watchers)
    failures = [c for c in calls if c.error]
    assert failures == [], failures[:3]
    assert {c.server for c in calls} == {0, 1}
    assert {v for c in calls for v in c.versions} == {v1, v2}
    assert all(len(set(c.versions)) == 1 for c in calls), "a batch mixed versions"
    check_switch(calls, v1, v2, asked, activated, asked_back)
    check_switch(calls, v2, v1, asked_back, rolled_back, float("inf"))


async def test_an_alias_is_served_by_every_watching_server_once_set_alias_returns(
    suite: Suite, published: Published, watchers: Watchers
) -> None:
    """SetAlias returns once both watching servers serve the alias (their poll is a minute
    away), so a Predict right after it answers from the aliased version on each of them; the
    same for DeleteAlias and NOT_FOUND."""
    v2 = published.v2.version.version
    customer: dict[str, float | str] = {"balance": 900.0, "income": 20_000.0, "student": "Yes"}
    async with AsyncRowcastClient(suite.targets) as admin:
        await admin.set_alias(MODEL, "zd-canary", v2)
        try:
            for address in watchers.addresses:
                async with AsyncRowcastClient(replace(suite.targets, prediction=address)) as c:
                    answer = await c.predict(MODEL, customer, alias="zd-canary")
                    assert answer.model_version == v2
        finally:
            await admin.delete_alias(MODEL, "zd-canary")
        for address in watchers.addresses:
            async with AsyncRowcastClient(replace(suite.targets, prediction=address)) as c:
                with pytest.raises(NotFoundError):
                    await c.predict(MODEL, customer, alias="zd-canary")
