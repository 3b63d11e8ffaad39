"""ModelService through the real client: listings, lookups, and activations that reach the
running prediction server without a restart."""

from __future__ import annotations

import asyncio
import time

import pytest

from rowcast.config import Settings
from rowcast.v1 import resources_pb2 as pb
from rowcast_client import AsyncRowcastClient, FailedPreconditionError, NotFoundError
from tests.integration.conftest import MODEL, Published, registered_version

CUSTOMER: dict[str, float | str] = {"balance": 2_000.0, "income": 25_000.0, "student": "Yes"}


async def test_models_and_versions_are_listed(
    client: AsyncRowcastClient, published: Published
) -> None:
    """The demo model is registered with its signature; both versions are READY, newest first."""
    models = {m.name: m for m in await client.list_models()}
    model = models[MODEL]
    assert [f.name for f in model.signature.features] == ["balance", "income", "student"]
    versions = await client.list_versions(MODEL)
    numbers = [v.version for v in versions]
    assert numbers == sorted(numbers, reverse=True)
    ready = [v.version for v in versions if v.state == pb.VERSION_STATE_READY]
    assert published.v1.version.version in ready and published.v2.version.version in ready
    v1 = await client.get_version(MODEL, published.v1.version.version)
    assert v1.row_count == published.v1.model.signature.grid_size
    assert v1.metrics["auc_raw"] > 0.9 and v1.metrics["auc_flattened"] > 0.9


async def test_unknown_model_or_version_is_not_found(client: AsyncRowcastClient) -> None:
    """GetVersion of a version that does not exist, or of an unknown model: NOT_FOUND."""
    with pytest.raises(NotFoundError) as err:
        await client.get_version(MODEL, 999)
    assert err.value.reason == "VERSION_NOT_FOUND"
    with pytest.raises(NotFoundError):
        await client.list_versions("no_such_model")


async def test_activating_a_version_that_is_not_ready_fails(
    client: AsyncRowcastClient, settings: Settings
) -> None:
    """A REGISTERED (not materialised) version cannot be activated: FAILED_PRECONDITION."""
    version = await registered_version(settings)
    with pytest.raises(FailedPreconditionError) as err:
        await client.activate_version(MODEL, version, actor="")
    assert "REGISTERED" in err.value.message


async def test_activation_reaches_running_prediction_server(
    client: AsyncRowcastClient, published: Published
) -> None:
    """After ActivateVersion(v2), predictions carry v2 within a second; rolling back works too."""
    v1, v2 = published.v1.version.version, published.v2.version.version
    assert (await client.predict(MODEL, CUSTOMER)).model_version == v1
    try:
        model = (await client.activate_version(MODEL, v2, actor="", reason="promote v2")).model
        assert (model.current_version, model.previous_version) == (v2, v1)
        switched_at = time.monotonic()
        while (await client.predict(MODEL, CUSTOMER)).model_version != v2:
            assert time.monotonic() - switched_at < 1.0, "activation not seen within 1 s"
            await asyncio.sleep(0.02)
        for _ in range(20):
            assert (await client.predict(MODEL, CUSTOMER)).model_version == v2
    finally:
        await client.activate_version(MODEL, v1, actor="", reason="restore v1")
    deadline = time.monotonic() + 1.0
    while (await client.predict(MODEL, CUSTOMER)).model_version != v1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
