"""Trust against the real suite (TLS, tokens, HBase) through the real Python client: calls
without valid credentials are UNAUTHENTICATED, health checks are public, each role reaches its
RPCs and no others, revocation works without a restart, the recorded actor is the caller's
identity, and a client certificate is an identity when the server accepts them (mTLS)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from click.testing import CliRunner
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rowcast.apps import start_prediction_server
from rowcast.config import Settings
from rowcast.security.certs import issue_client_cert
from rowcast.security.identity import Role
from rowcast.security.tokens import IssuedToken, issue_token, new_signing_key
from rowcast.v1 import audit_service_pb2 as audit_pb
from rowcast.v1 import audit_service_pb2_grpc as audit_grpc
from rowcast.v1 import resources_pb2 as pb
from rowcast_cli.security_cmd import auth
from rowcast_client import (
    AsyncRowcastClient,
    Credentials,
    PermissionDeniedError,
    Targets,
    UnauthenticatedError,
    UnavailableError,
)
from rowcast_client.channel import aio_channel
from tests.integration.conftest import MODEL, Published, Suite, audited, service_env

pytestmark = pytest.mark.asyncio(loop_scope="session")

CUSTOMER: dict[str, float | str] = {"balance": 1_100.0, "income": 30_000.0, "student": "No"}
#: How long a revocation may take to reach the servers (they re-read the list every 2 s).
REVOCATION_S = 5.0

Call = Callable[[AsyncRowcastClient], Awaitable[object]]

CALLS: dict[str, Call] = {
    "Predict": lambda c: c.predict(MODEL, CUSTOMER),
    "ListModels": lambda c: c.list_models(),
    "ListDecisions": lambda c: c.list_decisions("security-check", page_size=1),
}


def token(settings: Settings, name: str, *roles: Role, ttl_s: int = 3600) -> str:
    """A token signed with the suite's key."""
    return issued(settings, name, *roles, ttl_s=ttl_s).token


def issued(settings: Settings, name: str, *roles: Role, ttl_s: int = 3600) -> IssuedToken:
    key = settings.security.token_private_key_file.read_bytes()
    return issue_token(key, name, frozenset(roles), ttl_s)


def bearing(suite: Suite, bearer: str | None) -> Targets:
    """The suite's servers over TLS, with `bearer` as the token (None: none)."""
    targets = suite.targets_as(None)
    assert targets.credentials is not None
    return targets.secured(targets.credentials.with_token(bearer))


@pytest.mark.parametrize("rpc", sorted(CALLS))
async def test_a_call_without_a_token_is_unauthenticated(
    suite: Suite, published: Published, rpc: str
) -> None:
    """Predict, ListModels and ListDecisions over TLS with no token: UNAUTHENTICATED, saying
    how to authenticate."""
    async with AsyncRowcastClient(suite.targets_as(None), timeout_s=5.0) as client:
        with pytest.raises(UnauthenticatedError) as err:
            await CALLS[rpc](client)
    assert "Bearer" in err.value.message


@pytest.mark.parametrize("kind", ["garbage", "expired", "foreign key"])
async def test_a_bad_token_is_unauthenticated(
    settings: Settings, suite: Suite, published: Published, kind: str
) -> None:
    """A token that is not a JWT, one that expired an hour ago, or one signed by another key
    (with every role): UNAUTHENTICATED for Predict and ListModels, the token never echoed."""
    roles = frozenset(Role)
    if kind == "garbage":
        bearer = "not-a-token." + uuid.uuid4().hex
    elif kind == "expired":
        key = settings.security.token_private_key_file.read_bytes()
        bearer = issue_token(key, "tester", roles, 1, now=time.time() - 3600).token
    else:
        other, _ = new_signing_key()
        bearer = issue_token(other, "tester", roles, 3600).token
    async with AsyncRowcastClient(bearing(suite, bearer), timeout_s=5.0) as client:
        for rpc in ("Predict", "ListModels"):
            with pytest.raises(UnauthenticatedError) as err:
                await CALLS[rpc](client)
            assert bearer not in err.value.message
            if kind == "expired":
                assert "expired" in err.value.message


async def test_health_needs_no_credentials_and_plain_text_is_refused(suite: Suite) -> None:
    """Each server answers a health check over TLS with no token (SERVING); a plain-text
    channel to the same port gets no answer at all (UNAVAILABLE)."""
    request = health_pb2.HealthCheckRequest(service="")
    no_token = suite.targets_as(None).credentials
    for server in (suite.prediction, suite.audit, suite.model):
        target = f"127.0.0.1:{server.port}"
        async with aio_channel(target, no_token) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(request, timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        async with grpc.aio.insecure_channel(target) as plain:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await health_pb2_grpc.HealthStub(plain).Check(request, timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value


async def test_a_predictor_predicts_but_may_not_activate(
    settings: Settings, suite: Suite, published: Published
) -> None:
    """Role predictor: Predict answers; ActivateVersion is PERMISSION_DENIED naming role
    admin, and nothing is switched."""
    v1 = published.v1.version.version
    bearer = token(settings, "matrix-predictor", Role.PREDICTOR)
    async with AsyncRowcastClient(bearing(suite, bearer), timeout_s=5.0) as client:
        assert (await client.predict(MODEL, CUSTOMER)).model_version == v1
        with pytest.raises(PermissionDeniedError) as err:
            await client.activate_version(MODEL, published.v2.version.version, actor="")
    assert "role admin" in err.value.message
    async with AsyncRowcastClient(suite.targets, timeout_s=5.0) as admin:
        assert (await admin.get_model(MODEL)).current_version == v1


async def test_a_reader_lists_models_but_may_not_register_one(
    settings: Settings, suite: Suite, published: Published
) -> None:
    """Role reader: ListModels names the demo model; RegisterModel is PERMISSION_DENIED
    naming role admin, and no model is made."""
    name = f"denied_{uuid.uuid4().hex[:8]}"
    bearer = token(settings, "matrix-reader", Role.READER)
    async with AsyncRowcastClient(bearing(suite, bearer), timeout_s=5.0) as client:
        assert MODEL in [m.name for m in await client.list_models()]
        model = await client.get_model(MODEL)
        with pytest.raises(PermissionDeniedError) as err:
            await client.register_model(
                pb.Model(name=name, signature=model.signature, output=model.output)
            )
        assert "role admin" in err.value.message
        assert name not in [m.name for m in await client.list_models()]


async def test_an_auditor_lists_decisions_but_may_not_predict(
    settings: Settings, suite: Suite, published: Published
) -> None:
    """Role auditor: ListDecisions answers; Predict is PERMISSION_DENIED naming role
    predictor."""
    bearer = token(settings, "matrix-auditor", Role.AUDITOR)
    async with AsyncRowcastClient(bearing(suite, bearer), timeout_s=5.0) as client:
        await client.list_decisions("security-check", page_size=1)
        with pytest.raises(PermissionDeniedError) as err:
            await client.predict(MODEL, CUSTOMER)
    assert "role predictor" in err.value.message


async def test_a_recorder_records_decisions_and_nothing_else(
    settings: Settings, suite: Suite, client: AsyncRowcastClient
) -> None:
    """Role recorder: RecordDecisions of a served decision, sent again as it is stored, is
    accepted (recorded once, nothing new written); Predict, ListModels, GetDecision,
    ListDecisions and ActivateVersion are PERMISSION_DENIED."""
    served = await audited(client, (await client.predict(MODEL, CUSTOMER)).decision_id)
    again = pb.Decision()
    again.CopyFrom(served)
    del again.augmentations[:]
    recorder = bearing(suite, token(settings, "matrix-recorder", Role.RECORDER))
    async with aio_channel(recorder.audit, recorder.credentials) as channel:
        stub = audit_grpc.AuditServiceStub(channel)
        reply = await stub.RecordDecisions(
            audit_pb.RecordDecisionsRequest(decisions=[again]), timeout=10
        )
    assert reply.recorded_count == 1
    denied: dict[str, Call] = {
        **CALLS,
        "GetDecision": lambda c: c.get_decision(served.decision_id),
        "ActivateVersion": lambda c: c.activate_version(MODEL, served.model_version, actor=""),
    }
    outcomes: dict[str, str] = {}
    async with AsyncRowcastClient(recorder, timeout_s=5.0) as as_recorder:
        for rpc, call in denied.items():
            try:
                await call(as_recorder)
                outcomes[rpc] = "answered"
            except PermissionDeniedError:
                outcomes[rpc] = "denied"
    assert outcomes == dict.fromkeys(denied, "denied")


async def until_unauthenticated(client: AsyncRowcastClient, within_s: float) -> float:
    """Seconds until ListModels with the client's token is UNAUTHENTICATED; fails the test
    if it still answers after `within_s`."""
    started = time.monotonic()
    while True:
        try:
            await client.list_models()
        except UnauthenticatedError as exc:
            assert "revoked" in exc.message
            return time.monotonic() - started
        assert time.monotonic() - started < within_s, "the revoked token still works"
        await asyncio.sleep(0.1)


def revoke(settings: Settings, *args: str) -> None:
    result = CliRunner().invoke(
        auth, ["revoke", *args, "--reason", "test"], env=service_env(settings)
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("by", ["--token-id", "--name"])
async def test_a_revoked_token_is_refused_without_a_restart(
    settings: Settings, suite: Suite, published: Published, by: str
) -> None:
    """A token that works, revoked with `rowcast auth revoke --token-id ID` (or `--name
    NAME`): within a few seconds the same running servers answer it UNAUTHENTICATED."""
    name = f"revoked-{uuid.uuid4().hex[:8]}"
    given = issued(settings, name, Role.READER)
    async with AsyncRowcastClient(bearing(suite, given.token), timeout_s=5.0) as client:
        assert MODEL in [m.name for m in await client.list_models()]
        await asyncio.to_thread(
            revoke, settings, by, given.token_id if by == "--token-id" else name
        )
        took = await until_unauthenticated(client, REVOCATION_S)
    print(f"revoked by {by}: refused {took:.2f} s later")


async def test_the_actor_recorded_is_the_authenticated_caller(
    suite: Suite, published: Published
) -> None:
    """ActivateVersion as the tester claiming actor "mallory": PERMISSION_DENIED, nothing
    switched. With actor empty: the activation history records "tester". The version that
    was current is current again afterwards."""
    async with AsyncRowcastClient(suite.targets, timeout_s=30.0) as client:
        current = (await client.get_model(MODEL)).current_version
        v1, v2 = published.v1.version.version, published.v2.version.version
        other = v2 if current != v2 else v1
        with pytest.raises(PermissionDeniedError) as err:
            await client.activate_version(MODEL, other, actor="mallory", reason="forged")
        assert "mallory" in err.value.message
        assert (await client.get_model(MODEL)).current_version == current
        try:
            await client.activate_version(MODEL, other, actor="", reason="who am I")
            (latest, *_) = await client.list_activations(MODEL)
            assert (latest.to_version, latest.actor, latest.reason) == (
                other,
                "tester",
                "who am I",
            )
        finally:
            await client.activate_version(MODEL, current, actor="", reason="restore")
        assert (await client.get_model(MODEL)).current_version == current


@pytest_asyncio.fixture(
    loop_scope="session",
    params=["require"],
)
async def mtls_prediction(
    settings: Settings, suite: Suite, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[str, str]]:
    """A prediction server of its own that requires client certificates (mTLS): its address
    and the mode."""
    mode = request.param
    mtls = replace(settings, security=replace(settings.security, client_certs=mode))
    server = await start_prediction_server(mtls, 0, audit_target=suite.targets.audit)
    try:
        yield f"127.0.0.1:{server.port}", mode
    finally:
        await server.stop(1.0)


def with_certificate(settings: Settings, out: Path, name: str, role: Role) -> Credentials:
    """TLS with a client certificate for `name` with `role`, signed by the suite's CA, and
    no token."""
    paths = issue_client_cert(settings.security.tls_dir, name, frozenset({role}), out)
    return Credentials.from_files(paths.ca, cert_file=paths.cert, key_file=paths.key)


async def test_a_client_certificate_is_an_identity_with_its_roles(
    settings: Settings, published: Published, mtls_prediction: tuple[str, str], tmp_path: Path
) -> None:
    """Against a server accepting client certificates, no token: a certificate with role
    predictor predicts; one with role reader is PERMISSION_DENIED naming role predictor;
    none at all gets no connection."""
    address, _mode = mtls_prediction
    predictor = with_certificate(settings, tmp_path, "cert-predictor", Role.PREDICTOR)
    reader = with_certificate(settings, tmp_path, "cert-reader", Role.READER)
    targets = Targets(prediction=address)
    async with AsyncRowcastClient(targets.secured(predictor), timeout_s=5.0) as client:
        answer = await client.predict(MODEL, CUSTOMER)
    assert answer.model_version == published.v1.version.version
    async with AsyncRowcastClient(targets.secured(reader), timeout_s=5.0) as client:
        with pytest.raises(PermissionDeniedError) as err:
            await client.predict(MODEL, CUSTOMER)
    assert "role predictor" in err.value.message
    anonymous = Credentials.from_files(settings.security.ca_file)
    refused = UnavailableError
    async with AsyncRowcastClient(targets.secured(anonymous), timeout_s=5.0) as client:
        with pytest.raises(refused):
            await client.predict(MODEL, CUSTOMER)
