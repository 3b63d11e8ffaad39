"""Prediction servers learn of a route change by watching (a ZooKeeper data watch on the
registry generation, set by the ModelService), not by polling: with the poll slowed to a
minute, a watching server follows an alias change within a second and a server that does not
watch does not."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from rowcast.apps import start_prediction_server
from rowcast.config import Settings
from rowcast_client import AsyncRowcastClient, NotFoundError
from tests.integration.conftest import MODEL, Published, Suite

CUSTOMER: dict[str, float | str] = {"balance": 1_500.0, "income": 30_000.0, "student": "No"}
ALIAS = "watched"


async def answers_with(client: AsyncRowcastClient, within_s: float) -> int | None:
    """The version Predict with the alias answers with, retried for `within_s`; None if the
    alias stays unknown that long."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return (await client.predict(MODEL, CUSTOMER, alias=ALIAS)).model_version
        except NotFoundError:
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.02)


async def test_a_watching_server_follows_route_changes_without_polling(
    settings: Settings, suite: Suite, published: Published
) -> None:
    slow_poll = replace(settings.server, registry_refresh_s=60.0)
    watching = await start_prediction_server(
        replace(settings, server=slow_poll), 0, audit_target=suite.targets.audit
    )
    polling = await start_prediction_server(
        replace(settings, server=replace(slow_poll, registry_watch=False)),
        0,
        audit_target=suite.targets.audit,
    )
    v2 = published.v2.version.version
    try:
        async with (
            AsyncRowcastClient(suite.targets) as admin,
            AsyncRowcastClient(
                replace(suite.targets, prediction=f"127.0.0.1:{watching.port}")
            ) as w,
            AsyncRowcastClient(replace(suite.targets, prediction=f"127.0.0.1:{polling.port}")) as p,
        ):
            assert await answers_with(w, 0) is None
            assert await answers_with(p, 0) is None
            await admin.set_alias(MODEL, ALIAS, v2)
            started = time.monotonic()
            assert await answers_with(w, 1.0) == v2
            print(f"watching server switched {time.monotonic() - started:.3f} s after SetAlias")
            # The control: without the watch, a one-minute poll has not seen it.
            assert await answers_with(p, 2.0) is None

            await admin.delete_alias(MODEL, ALIAS)
            deadline = time.monotonic() + 1.0
            with pytest.raises(NotFoundError):
                while time.monotonic() < deadline:
                    await w.predict(MODEL, CUSTOMER, alias=ALIAS)
                    await asyncio.sleep(0.02)
    finally:
        await watching.stop(1.0)
        await polling.stop(1.0)
