"""The hot path through the real client: cache, PredictBatch, StreamPredict, fallbacks,
overload and HBase outages, against real HBase and real servers."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import grpc
import happybase
import pytest
import pytest_asyncio

from rowcast.apps import start_prediction_server
from rowcast.config import Settings
from rowcast.jobs.publish import PublishSpec, publish
from rowcast.server import RunningServer
from rowcast.v1 import prediction_service_pb2 as pred_pb
from rowcast.v1 import prediction_service_pb2_grpc as pred_grpc
from rowcast.v1 import resources_pb2 as pb
from rowcast_client import (
    AsyncRowcastClient,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    UnavailableError,
)
from rowcast_client.channel import aio_channel
from rowcast_client.messages import feature_values
from rowcast_dev.hbase.runtime import StandaloneHBase
from tests.integration.conftest import MODEL, Published, Suite

pytestmark = pytest.mark.asyncio(loop_scope="session")


def customer(balance: float, student: str = "No") -> dict[str, float | str]:
    return {"balance": balance, "income": 35_000.0, "student": student}


@pytest_asyncio.fixture(loop_scope="session")
async def own_server(
    settings: Settings, suite: Suite, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[AsyncRowcastClient, RunningServer]]:
    """A prediction server of this test's own (fresh cache; settings from the marker)."""
    overrides = getattr(request, "param", {})
    custom = replace(settings, server=replace(settings.server, **overrides))
    server = await start_prediction_server(custom, 0, audit_target=suite.targets.audit)
    targets = replace(suite.targets, prediction=f"127.0.0.1:{server.port}")
    async with AsyncRowcastClient(targets, timeout_s=5.0) as client:
        yield client, server
    await server.stop(1.0)


async def test_second_lookup_of_a_key_comes_from_the_cache(
    own_server: tuple[AsyncRowcastClient, RunningServer],
) -> None:
    """A fresh server reads a key from HBase once, then answers it from its cache."""
    client, _ = own_server
    first = await client.predict(MODEL, customer(1_234.0))
    second = await client.predict(MODEL, customer(1_234.0))
    assert first.source == pb.PREDICTION_SOURCE_HBASE
    assert second.source == pb.PREDICTION_SOURCE_CACHE
    assert (second.output, second.model_version) == (first.output, first.model_version)
    assert second.decision_id != first.decision_id


@pytest.mark.parametrize("own_server", [{"cache_size": 0}], indirect=True)
async def test_cache_size_zero_disables_the_cache(
    own_server: tuple[AsyncRowcastClient, RunningServer],
) -> None:
    """With cache_size 0 every lookup goes to HBase."""
    client, _ = own_server
    for _ in range(3):
        r = await client.predict(MODEL, customer(1_234.0))
        assert r.source == pb.PREDICTION_SOURCE_HBASE


async def test_predict_batch_answers_every_input_from_one_version(
    client: AsyncRowcastClient, published: Published
) -> None:
    """32 inputs: 32 answers in order, one version, each equal to a single Predict."""
    inputs = [customer(100.0 * i, "Yes" if i % 2 else "No") for i in range(32)]
    responses = await client.predict_batch(MODEL, inputs, subjects=[f"b{i}" for i in range(32)])
    assert len(responses) == 32
    assert {r.model_version for r in responses} == {published.v1.version.version}
    assert len({r.decision_id for r in responses}) == 32
    for features, r in zip(inputs[:5], responses[:5], strict=True):
        single = await client.predict(MODEL, features)
        assert (single.key, single.output) == (r.key, r.output)


@pytest.mark.parametrize(
    ("inputs", "field"),
    [
        ([], "inputs"),
        ([customer(1.0)] * 1_001, "inputs"),
        (
            [customer(1.0)] * 3 + [{"balance": "x", "income": 1.0, "student": "No"}],
            "inputs[3].features.balance",
        ),
        ([customer(1.0), {"balance": 1.0, "income": 1.0}], "inputs[1].features.student"),
    ],
    ids=["empty", "oversized", "ill-typed", "missing"],
)
async def test_bad_batches_name_the_offending_index_and_field(
    suite: Suite, inputs: list[dict[str, float | str]], field: str
) -> None:
    """Empty, oversized or malformed batches: INVALID_ARGUMENT naming index and field."""
    async with AsyncRowcastClient(suite.targets) as c:
        with pytest.raises(InvalidArgumentError) as err:
            await c.predict_batch(MODEL, inputs)
    assert [v.field for v in err.value.violations] == [field]


async def test_stream_answers_in_order_even_one_at_a_time(suite: Suite) -> None:
    """A burst of 100 requests gets 100 answers in order; a ping-pong caller is served too."""
    balances = [float(b) for b in range(0, 2_500, 25)]
    async with aio_channel(suite.targets.prediction, suite.targets.credentials) as channel:
        stub = pred_grpc.PredictionServiceStub(channel)

        async def burst() -> AsyncIterator[pred_pb.StreamPredictRequest]:
            for b in balances:
                yield pred_pb.StreamPredictRequest(
                    request=pred_pb.PredictRequest(
                        model=MODEL, features=feature_values(customer(b))
                    )
                )

        answers = [m.response async for m in stub.StreamPredict(burst(), timeout=30.0)]
        assert len(answers) == len(balances)
        for b, answer in zip(balances[::20], answers[::20], strict=True):
            unary = await stub.Predict(
                pred_pb.PredictRequest(model=MODEL, features=feature_values(customer(b))), timeout=5
            )
            assert answer.key == unary.key

        call = stub.StreamPredict(timeout=10.0)
        for b in (300.0, 600.0, 900.0):
            await call.write(
                pred_pb.StreamPredictRequest(
                    request=pred_pb.PredictRequest(
                        model=MODEL, features=feature_values(customer(b))
                    )
                )
            )
            reply = await call.read()
            assert isinstance(reply, pred_pb.StreamPredictResponse)  # not grpc.aio.EOF
            assert reply.response.decision_id
        await call.done_writing()


async def test_bad_request_ends_the_stream_naming_its_position(suite: Suite) -> None:
    """Requests before the bad one are answered; then INVALID_ARGUMENT names stream[2]."""
    async with aio_channel(suite.targets.prediction, suite.targets.credentials) as channel:
        stub = pred_grpc.PredictionServiceStub(channel)
        requests: list[dict[str, float | str]] = [
            customer(100.0),
            customer(200.0),
            {"balance": 1.0, "income": 1.0},
        ]

        async def gen() -> AsyncIterator[pred_pb.StreamPredictRequest]:
            for f in requests:
                yield pred_pb.StreamPredictRequest(
                    request=pred_pb.PredictRequest(model=MODEL, features=feature_values(f))
                )

        got = []
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for m in stub.StreamPredict(gen(), timeout=10.0):
                got.append(m)
    assert len(got) == 2
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "stream[2].features.student" in (err.value.details() or "")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def holey_model(settings: Settings, hbase: StandaloneHBase) -> str:
    """A small model whose table lost one row (as after a damaged write)."""
    # 4 x 4 bins flatten the model coarsely (AUC drops ~0.1): lift the gate's fidelity limit.
    coarse = replace(settings, max_fidelity_drop=replace(settings.max_fidelity_drop, auc=1.0))
    result = await publish(
        coarse, PublishSpec(model="holey", bins={"balance": 4, "income": 4}, activate=True)
    )
    conn = happybase.Connection("127.0.0.1", settings.hbase.thrift_port)
    try:
        first_key: bytes = next(iter(conn.table(result.version.table).scan(limit=1)))[0]
        conn.table(result.version.table).delete(first_key)
    finally:
        conn.close()
    return first_key.hex()


async def _find_missing(client: AsyncRowcastClient, missing_key: str) -> pred_pb.PredictResponse:
    for balance in (0.0, 500.0, 900.0, 1_200.0, 2_000.0):
        for income in (1_000.0, 30_000.0, 40_000.0, 60_000.0):
            for student in ("No", "Yes"):
                try:
                    r = await client.predict(
                        "holey", {"balance": balance, "income": income, "student": student}
                    )
                except NotFoundError as exc:
                    assert exc.reason == "PREDICTION_ROW_NOT_FOUND"
                    raise
                if r.key == missing_key:
                    return r
    raise AssertionError("no probe input hit the removed row")


async def test_missing_row_is_not_found_by_default(
    holey_model: str, own_server: tuple[AsyncRowcastClient, RunningServer]
) -> None:
    """Without a configured default, a missing row is NOT_FOUND, never a made-up answer."""
    client, _ = own_server
    with pytest.raises(NotFoundError):
        await _find_missing(client, holey_model)


@pytest.mark.parametrize("own_server", [{"missing_row_default": 0.5}], indirect=True)
async def test_missing_row_falls_back_to_the_configured_default_and_says_so(
    holey_model: str, own_server: tuple[AsyncRowcastClient, RunningServer]
) -> None:
    """With a default configured, the answer is the default, marked FALLBACK with its rule."""
    client, _ = own_server
    r = await _find_missing(client, holey_model)
    assert r.output == 0.5
    assert r.source == pb.PREDICTION_SOURCE_FALLBACK
    assert list(r.fallback_rules) == [pred_pb.FALLBACK_RULE_MISSING_ROW_DEFAULT]


@pytest.mark.parametrize("own_server", [{"max_in_flight": 2}], indirect=True)
async def test_overload_is_resource_exhausted_at_once(
    own_server: tuple[AsyncRowcastClient, RunningServer],
) -> None:
    """Beyond max_in_flight concurrent calls, extra calls fail RESOURCE_EXHAUSTED quickly."""
    client, _ = own_server
    started = time.monotonic()
    results = await asyncio.gather(
        *(client.predict(MODEL, customer(float(b))) for b in range(0, 3_000, 30)),
        return_exceptions=True,
    )
    assert time.monotonic() - started < 5.0
    rejected = [r for r in results if isinstance(r, ResourceExhaustedError)]
    answered = [r for r in results if isinstance(r, pred_pb.PredictResponse)]
    assert rejected and answered
    assert len(rejected) + len(answered) == len(results)


async def test_cached_keys_are_answered_while_hbase_hangs(
    own_server: tuple[AsyncRowcastClient, RunningServer], hbase: StandaloneHBase
) -> None:
    """With the Thrift gateway frozen, cached keys answer (CACHE) and others fail UNAVAILABLE."""
    client, _ = own_server
    warm = await client.predict(MODEL, customer(777.0))
    hbase.kill("thrift", signal.SIGSTOP)
    try:
        cached = await client.predict(MODEL, customer(777.0), timeout=1.0)
        assert cached.source == pb.PREDICTION_SOURCE_CACHE and cached.output == warm.output
        started = time.monotonic()
        with pytest.raises(UnavailableError):
            await client.predict(MODEL, customer(2_345.0, "Yes"), timeout=1.0)
        assert time.monotonic() - started < 1.2
    finally:
        hbase.kill("thrift", signal.SIGCONT)
