"""Activation and rollback under continuous Predict load: no failed request, no mixed batch,
and once a server answers with the new version it never answers with the old one again."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from rowcast_client import AsyncRowcastClient
from tests.integration.conftest import MODEL, Published

#: The documented bound for a switch to reach running prediction servers.
PROPAGATION_S = 1.0


@dataclass(frozen=True)
class Call:
    started: float
    ended: float
    versions: tuple[int, ...]
    error: str = ""


async def drive(
    client: AsyncRowcastClient, stop: asyncio.Event, calls: list[Call], batch: bool
) -> None:
    i = 0
    while not stop.is_set():
        i += 1
        features = {"balance": float(100 + (i * 37) % 2_500), "income": 30_000.0, "student": "No"}
        started = time.monotonic()
        try:
            if batch:
                rs = await client.predict_batch(MODEL, [features] * 16, timeout=5.0)
                versions = tuple(r.model_version for r in rs)
            else:
                versions = ((await client.predict(MODEL, features, timeout=5.0)).model_version,)
            calls.append(Call(started, time.monotonic(), versions))
        except Exception as exc:
            calls.append(Call(started, time.monotonic(), (), repr(exc)))


def check_switch(calls: list[Call], old: int, new: int, switched: float, until: float) -> None:
    """Between the switch and `until`: the new version shows up within PROPAGATION_S, and every
    call started after the first new answer, or after the propagation bound, carries it."""
    window = [c for c in calls if switched <= c.started < until]
    first_new = min((c.ended for c in window if new in c.versions), default=None)
    assert first_new is not None and first_new - switched < PROPAGATION_S
    for c in window:
        if c.started >= first_new or c.started >= switched + PROPAGATION_S:
            assert c.versions == (new,) * len(c.versions), (c, old, new)


async def test_activation_and_rollback_under_load_lose_nothing(
    client: AsyncRowcastClient, published: Published
) -> None:
    v1, v2 = published.v1.version.version, published.v2.version.version
    assert (await client.get_model(MODEL)).current_version == v1
    calls: list[Call] = []
    stop = asyncio.Event()
    workers = [asyncio.create_task(drive(client, stop, calls, batch=i == 0)) for i in range(6)]
    try:
        await asyncio.sleep(1.0)
        await client.activate_version(MODEL, v2, actor="load-test", reason="switch under load")
        activated = time.monotonic()
        await asyncio.sleep(2.0)
        await client.rollback_model(MODEL, actor="load-test", reason="roll back under load")
        rolled_back = time.monotonic()
        await asyncio.sleep(2.0)
    finally:
        stop.set()
        await asyncio.gather(*workers)
        model = await client.get_model(MODEL)
        if model.current_version != v1:
            await client.activate_version(MODEL, v1, actor="load-test", reason="restore")
    failures = [c for c in calls if c.error]
    assert failures == [], failures[:3]
    assert len(calls) > 100
    assert {v for c in calls for v in c.versions} == {v1, v2}
    assert all(len(set(c.versions)) == 1 for c in calls), "a batch mixed versions"
    check_switch(calls, v1, v2, activated, rolled_back)
    check_switch(calls, v2, v1, rolled_back, float("inf"))
