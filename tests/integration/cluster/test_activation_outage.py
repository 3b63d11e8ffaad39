"""An activation asked while the region server holding the registry's row of the model (the
`rowcast:models` table: its aliases and the routes' generation) is killed -9 either completes or
fails with UNAVAILABLE / DEADLINE_EXCEEDED; either way, once the region is served again, both
prediction servers answer with one version, the one the registry names, and never leave it
(issue 12: "never leaves servers on mixed versions")."""

from __future__ import annotations

import asyncio
import signal
import time

import grpc

from rowcast.jobs.publish import PublishSpec, publish
from rowcast.security.identity import Role
from rowcast.store.client import HBaseClient
from rowcast.store.schema import MODELS
from rowcast_cli.security_cmd import write_token
from rowcast_client import AsyncRowcastClient, Credentials, RowcastClientError, Targets
from rowcast_dev.chaos.serving import ensure_replicated_version
from rowcast_dev.chaos.serving_stack import ServingStack, StackSpec
from rowcast_dev.hbase.cluster import ClusterHBase
from tests.integration.cluster.conftest import FIGURES

MODEL = "credit_default"
FEATURES: dict[str, float | str] = {"balance": 800.0, "income": 30_000.0, "student": "No"}
#: How long the servers may take to agree once the registry is back: a missed generation bump is
#: caught by the routers' full reload every 30 s (prediction/router.py).
CONVERGE_S = 90.0


async def served(stack: ServingStack, credentials: Credentials) -> list[int]:
    """The version each prediction server answers with now."""
    versions = []
    for server in stack.predictions:
        targets = Targets(prediction=server.target, credentials=credentials)
        async with AsyncRowcastClient(targets) as client:
            versions.append((await client.predict(MODEL, FEATURES, timeout=5.0)).model_version)
    return versions


async def registry_version(admin: AsyncRowcastClient) -> int:
    """The registry's current version of the model, retried while its region is moving."""
    deadline = time.monotonic() + 120.0
    while True:
        try:
            return int((await admin.get_model(MODEL, timeout=10.0)).current_version)
        except RowcastClientError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)


async def test_activation_during_a_registry_outage_completes_or_fails_cleanly(
    cluster: ClusterHBase,
) -> None:
    stack = ServingStack(StackSpec(home=cluster.paths.home))
    settings = stack.settings
    old, _ = await ensure_replicated_version(settings, MODEL)
    new = (await publish(settings, PublishSpec(model=MODEL, activate=False))).version.version
    predictor = await asyncio.to_thread(stack.prepare_security)
    sec = settings.security
    token = sec.auth_dir / "activation-outage-admin.token"
    write_token(sec, "activation-outage-test", frozenset({Role.ADMIN}), 3_600, token)
    await stack.start_services()
    assert stack.model is not None
    admin_targets = Targets(
        prediction=stack.predictions[0].target,
        model=stack.model.target,
        credentials=Credentials.from_files(sec.ca_file, token_file=token),
    )
    client = HBaseClient(settings.hbase)
    victim: str | None = None
    try:
        assert await served(stack, predictor) == [old, old]
        located = client.thrift2.call(
            lambda c: c.getRegionLocation(MODELS.encode(), MODEL.encode(), True)
        )
        victim = cluster.regionserver_at(located.serverName.port)
        assert victim is not None
        async with AsyncRowcastClient(admin_targets) as admin:
            cluster.kill(victim, signal.SIGKILL)
            error: RowcastClientError | None = None
            began = time.monotonic()
            try:
                response = await admin.activate_version(
                    MODEL, new, reason="during a region-server outage", timeout=60.0
                )
            except RowcastClientError as exc:
                error = exc
            FIGURES["activation_during_outage_s"] = round(time.monotonic() - began, 1)
            if error is None:
                assert response.model.current_version == new
                if response.propagation.complete:
                    # Every request started after a complete switch is answered with it.
                    assert await served(stack, predictor) == [new, new]
            else:
                assert error.code in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ), error
            FIGURES["activation_during_outage"] = 1.0 if error is None else 0.0
            await asyncio.to_thread(cluster.restart, victim, 300)
            victim = None
            expected = await registry_version(admin)
            assert expected in (old, new)
            if error is None:
                assert expected == new
        deadline = time.monotonic() + CONVERGE_S
        seen = await served(stack, predictor)
        while seen != [expected, expected]:
            assert time.monotonic() < deadline, f"servers on {seen}, the registry on {expected}"
            await asyncio.sleep(1.0)
            seen = await served(stack, predictor)
        for _ in range(5):  # and they stay there
            assert await served(stack, predictor) == [expected, expected]
    finally:
        client.close()
        if victim is not None:
            await asyncio.to_thread(cluster.restart, victim, 300)
        await stack.down()
